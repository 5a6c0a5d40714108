/*
 * N-Triples output (RDF 1.1 N-Triples, canonical form): string literals escaped as the canonical
 * form asks (ECHAR for \b \t \n \f \r \" \\, \u00XX for the other control characters, everything
 * else as UTF-8), bytes that are not well-formed UTF-8 replaced by U+FFFD, and IRIs with every
 * byte IRIREF forbids percent-encoded. It knows nothing of the vocabulary (tg_rdf.h does).
 * Pure functions on caller-owned buffers; any thread.
 */
#ifndef TG_NTRIPLES_H
#define TG_NTRIPLES_H

#include <stddef.h>

#include "fg/buf.h"
#include "fg/error.h"

#define TG_NT_XSD_DATETIME "http://www.w3.org/2001/XMLSchema#dateTime"
#define TG_NT_XSD_INTEGER  "http://www.w3.org/2001/XMLSchema#integer"
#define TG_NT_XSD_BOOLEAN  "http://www.w3.org/2001/XMLSchema#boolean"

/* Appends s[0..len) as the inside of a STRING_LITERAL_QUOTE (no quotes), escaped canonically;
 * every byte that does not start a well-formed UTF-8 sequence (RFC 3629: no overlong forms, no
 * surrogates, nothing past U+10FFFF) becomes U+FFFD. FG_ETOOBIG at out's cap (out may then
 * hold part of the text: callers roll back to their own mark). */
int tg_nt_put_string(fg_buf *out, const char *s, size_t len) FG_MUST_CHECK;

/* Appends s[0..len) as the inside of an IRIREF (no angle brackets): bytes IRIREF forbids
 * (controls, space, < > " { } | ^ ` \) and every byte from 0x80 up are percent-encoded (%XX,
 * upper-case), so the result is a URI whatever the input. It does not check that s is an IRI.
 * FG_ETOOBIG as tg_nt_put_string. */
int tg_nt_put_iri(fg_buf *out, const char *s, size_t len) FG_MUST_CHECK;

/* One triple "<s> <p> <o> .\n" whose three IRIs are already safe (built by tg_rdf from checked
 * parts). FG_ETOOBIG. */
int tg_nt_triple_iri(fg_buf *out, const char *s, const char *p, const char *o) FG_MUST_CHECK;

/* One triple "<s> <p> \"lit\" .\n", or "...\"lit\"^^<datatype> .\n" when datatype is not NULL;
 * the literal is escaped with tg_nt_put_string. FG_ETOOBIG. */
int tg_nt_triple_literal(fg_buf *out, const char *s, const char *p, const char *lit, size_t len,
                         const char *datatype) FG_MUST_CHECK;

#endif
