#!/usr/bin/env bash
# Source checks that the compiler does not make: the formatter (clang-format 14, .clang-format)
# and calls banned from the C code (docs/architecture.md). Exit 1 with the offending lines.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
status=0
mapfile -t sources < <(git ls-files '*.c' '*.h' 2>/dev/null || find common proto services tools tests bench -name '*.[ch]')

if command -v clang-format >/dev/null; then
  if ! clang-format --dry-run --Werror "${sources[@]}" 2>/tmp/fg-format.$$; then
    echo "clang-format: these files are not formatted (run clang-format -i on them):"
    grep -o '^[^:]*\.[ch]' /tmp/fg-format.$$ | sort -u
    status=1
  fi
  rm -f /tmp/fg-format.$$
else
  echo "SKIP: clang-format is not installed; formatting not checked"
fi

# strtol family is allowed only with an end pointer (checked by review: the grep finds calls
# whose second argument is NULL).
banned='\b(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|atoll|strtok)\s*\(|\bstrto(l|ll|ul|ull)\s*\([^,]*,\s*NULL'
product=$(printf '%s\n' "${sources[@]}" | grep -v '^tests/' || true)
if [ -n "$product" ] && grep -nE "$banned" $product; then
  echo "banned calls above (use snprintf, fg_buf, strto* with an end check)"
  status=1
fi
if [ -n "$product" ] && grep -nE '\bsystem\s*\(' $product; then
  echo "system() is banned in the product"
  status=1
fi
[ $status -eq 0 ] && echo "lint: ${#sources[@]} files formatted, no banned calls"
exit $status
