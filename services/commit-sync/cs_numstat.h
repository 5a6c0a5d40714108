/*
 * Line counts of one changed file exactly as `git diff --numstat` prints them: the added and
 * deleted lines of git's xdiff Myers diff with default options (its pre-pass that drops lines
 * without a match, its cost heuristics, which can make the diff non-minimal). Only the counts are
 * computed: no script, no hunks. Binary detection is git's (a NUL in the first 8000 bytes). A
 * cs_numstat holds scratch memory reused between files; one per thread.
 */
#ifndef CS_NUMSTAT_H
#define CS_NUMSTAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg/error.h"

/* git's big_file_threshold: larger blobs are binary without being looked at. */
#define CS_NUMSTAT_BIG_FILE 536870912
/* git refuses to diff files past this (MAX_XDIFF_SIZE); so do we. */
#define CS_NUMSTAT_SIZE_MAX 1073741823

typedef struct cs_numstat cs_numstat;

/* FG_ENOMEM. */
int cs_numstat_new(cs_numstat **out) FG_MUST_CHECK;
void cs_numstat_free(cs_numstat *ns);

/* The lines of data as xdiff counts them (a last line without newline counts). */
size_t cs_numstat_lines(const char *data, size_t len);

/* git's buffer_is_binary: a NUL within the first 8000 bytes. */
bool cs_numstat_is_binary(const char *data, size_t len);

/* Counts the lines added (in b) and deleted (from a) by git's diff of a and b, both text.
 * FG_ENOMEM; FG_ETOOBIG past CS_NUMSTAT_SIZE_MAX. */
int cs_numstat_diff(cs_numstat *ns, const char *a, size_t alen, const char *b, size_t blen,
                    uint64_t *added, uint64_t *deleted) FG_MUST_CHECK;

#endif
