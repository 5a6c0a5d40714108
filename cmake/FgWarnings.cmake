# Strict warnings from day one: cheap on new code, nearly impossible to add later.
# Third-party headers come in through pkg-config IMPORTED targets, hence as SYSTEM includes.
set(FG_WARNINGS
  -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes
  -Wformat=2 -Wvla -Wundef -Wwrite-strings -Wimplicit-fallthrough
  -Wold-style-definition -Wnull-dereference -Wpointer-arith)
add_compile_options(${FG_WARNINGS})

if(FG_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer)
  add_link_options(-fsanitize=address,undefined -fno-sanitize-recover=all)
endif()
