# Simulates libpq failing to allocate a connection, and records the parameters it was given.
target_link_options(${target} PRIVATE -Wl,--wrap=PQconnectStartParams)
