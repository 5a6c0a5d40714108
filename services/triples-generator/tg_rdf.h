/*
 * The graph's vocabulary (DESIGN.md "The graph", docs/vocabulary.md): commit bodies and the
 * project node as N-Triples. IRIs are deterministic (sha, sha1 of the lower-cased email, sha1 of
 * sha + type + email), so writing a commit twice states the same triples. It does not talk to the
 * store and does not compress. A tg_rdf_doc is one payload being written: it remembers the
 * persons it wrote so a batch states each (person, name) once. One thread per doc.
 */
#ifndef TG_RDF_H
#define TG_RDF_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/buf.h"
#include "fg/error.h"
#include "fg/proto.h"

#define TG_RDF_NS_FG     "https://w3id.org/forgegraph/ns#"
#define TG_RDF_NS_SCHEMA "http://schema.org/"
#define TG_RDF_NS_PROV   "http://www.w3.org/ns/prov#"
#define TG_RDF_TYPE      "http://www.w3.org/1999/02/22-rdf-syntax-ns#type"

#define TG_RDF_DEFAULT_BASE "http://forgegraph.local"
#define TG_RDF_BASE_MAX     1024                   /* bytes of FG_GRAPH_BASE */
#define TG_RDF_IRI_MAX      (TG_RDF_BASE_MAX + 64) /* base + "/activities/" + 40 hex + NUL */
#define TG_RDF_SEEN_MAX     65536 /* (person, name) pairs a doc remembers; past it, repeats */

/* FG_EINVALID unless base is an http(s) IRI of at most TG_RDF_BASE_MAX bytes that N-Triples can
 * carry as it is (no byte tg_nt_put_iri would encode). A config check for FG_GRAPH_BASE. */
int tg_rdf_check_base(const char *base) FG_MUST_CHECK;

/* <{base}/projects/{id}>: the project node and the name of its graph, into out (NUL-terminated,
 * TG_RDF_IRI_MAX bytes). A trailing '/' of base is ignored. FG_EINVALID for a bad base or id. */
int tg_rdf_project_iri(char out[TG_RDF_IRI_MAX], const char *base, long long id) FG_MUST_CHECK;

/* <{base}/commits/{sha}>. FG_EINVALID for a bad base. */
int tg_rdf_commit_iri(char out[TG_RDF_IRI_MAX], const char *base, const char *sha) FG_MUST_CHECK;

/* <{base}/persons/{sha1 of the ASCII-lower-cased email}>; also the hex hash into hash_out when
 * not NULL. FG_EINVALID for a bad base; FG_ERROR when hashing fails. */
int tg_rdf_person_iri(char out[TG_RDF_IRI_MAX], char *hash_out, const char *base, const char *email,
                      size_t email_len) FG_MUST_CHECK;

/* <{base}/activities/{sha1(sha + type + lower-cased email)}>. Errors as tg_rdf_person_iri. */
int tg_rdf_activity_iri(char out[TG_RDF_IRI_MAX], const char *base, const char *sha,
                        const char *type, const char *email, size_t email_len) FG_MUST_CHECK;

/* Appends the IRI (no angle brackets) that schema:codeRepository states for a clone URL: an
 * absolute local path becomes file:// with its bytes percent-encoded as a path needs; a URL
 * with a scheme stays as it is (bytes IRIs forbid percent-encoded); scp-like `user@host:path`
 * becomes ssh://user@host/path. FG_EINVALID for anything else (empty, relative path...);
 * FG_ETOOBIG. */
int tg_rdf_code_repository(fg_buf *out, const char *clone_url) FG_MUST_CHECK;

/* What the project node states. */
typedef struct {
    long long id;
    fg_proto_forge forge;
    const char *path;      /* "ns/name"; schema:name is its last segment */
    const char *clone_url; /* NULL when unknown: no schema:codeRepository */
} tg_rdf_project;

/* Counts of what a doc wrote, for metrics and the bench. */
typedef struct {
    size_t commits;
    size_t activities;
    size_t skipped_trailers; /* known keys whose value is not `Name <email>` */
} tg_rdf_counts;

struct tg_rdf_seen_slot;

typedef struct {
    char base[TG_RDF_BASE_MAX + 1]; /* without a trailing '/' */
    bool store_emails;
    char project[TG_RDF_IRI_MAX];
    tg_rdf_counts counts;
    /* (person hash, name) pairs written: an open-addressing set whose keys live in `keys` */
    struct tg_rdf_seen_slot *slots; /* NULL until the first person */
    size_t nslots, nseen;
    fg_buf keys;
} tg_rdf_doc;

/* Starts a doc for project `project_id`. FG_EINVALID for a bad base or id. */
int tg_rdf_doc_init(tg_rdf_doc *doc, const char *base, bool store_emails,
                    long long project_id) FG_MUST_CHECK;
void tg_rdf_doc_dispose(tg_rdf_doc *doc);

/* Appends the project node's triples (its id must be the doc's). FG_EINVALID for a path or
 * forge out of range; FG_ETOOBIG. A clone URL tg_rdf_code_repository refuses is left out. */
int tg_rdf_put_project(fg_buf *out, tg_rdf_doc *doc, const tg_rdf_project *p) FG_MUST_CHECK;

/* Appends a commit's triples: the commit node, its activities and their persons (persons the
 * doc wrote already are not repeated). On error out may hold part of the commit: the caller
 * truncates to its own mark. FG_EINVALID for a commit that cannot be RDF (a sha or time that is
 * not what the schema promises); FG_ETOOBIG at out's cap; FG_ERROR when hashing fails. */
int tg_rdf_put_commit(fg_buf *out, tg_rdf_doc *doc, const fg_proto_commit *c) FG_MUST_CHECK;

#endif
