/*
 * Helpers for webhook_test.c: signing and sending GitHub and GitLab deliveries the way the forges
 * do, registering hooks through the webhook's internal API, and watching fg.events through a
 * durable test queue of our own (fg.webhook-test, bound to COMMIT_SYNC_REQUEST and FORGE_EVENT).
 * Every message taken from the queue is parsed with proto (so each one is checked against its
 * schema) and kept when its project belongs to this run. Failures are cmocka assertions.
 */
#ifndef WEBHOOK_CLIENT_H
#define WEBHOOK_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/http_client.h"

/* ---- deliveries ---- */

typedef struct {
    const char *base;      /* webhook base URL */
    const char *event;     /* X-GitHub-Event / X-Gitlab-Event; NULL: left out */
    const char *delivery;  /* X-GitHub-Delivery / Idempotency-Key; NULL: left out */
    const char *uuid;      /* X-Gitlab-Event-UUID; NULL: left out */
    const char *signature; /* X-Hub-Signature-256 / X-Gitlab-Token; NULL: left out */
    const void *body;
    size_t body_len;
} wt_delivery;

void wt_init(void);
void wt_cleanup(void);

/* The derived hook secret of (forge, id) under FG_HOOK_SECRET_KEY. */
void wt_hook_secret(char out[65], const char *forge, long long id);

/* "sha256=<hex HMAC-SHA256(secret, body)>". */
void wt_github_signature(char out[80], const char *secret, const void *body, size_t len);

/* Posts to /webhooks/github or /webhooks/gitlab; returns the status, *out_id the archive id of a
 * 202 (may be NULL). */
long wt_post_github(const wt_delivery *d, long long *out_id);
long wt_post_gitlab(const wt_delivery *d, long long *out_id);

/* Any request to the webhook with the service key (method, path, body may be NULL); returns the
 * status and, when out_body is not NULL, a copy of the body (free it). */
long wt_call(const char *base, const char *method, const char *path, const char *body,
             char **out_body);

/* PUT /hooks/{forge}/{forgeId} (asserts 200). */
void wt_register(const char *base, const char *forge, long long forge_id, long long project_id,
                 const char *path);

/* A unique string for delivery ids ("wt-<run>-<n>"). */
const char *wt_unique(char out[64]);

/* ---- the bus ---- */

typedef struct {
    char id[64];
    char category[32];
    long long project;
    char delivery_id[160]; /* FORGE_EVENT deliveryId, else "" */
    char event[64];        /* FORGE_EVENT event */
    char action[80];       /* FORGE_EVENT action, "" when absent */
    char *payload;         /* FORGE_EVENT payload as compact JSON (owned) */
} wt_message;

/* Opens the test queue (declares it durable, bound to both categories) and drains what an
 * earlier run left there. Messages of projects >= min_project are kept. */
void wt_bus_open(long long min_project);
void wt_bus_close(void);

/* Takes deliveries from the queue for up to ms. */
void wt_bus_pump(int ms);

/* Waits (pumping) until a FORGE_EVENT with that deliveryId has been seen; false on timeout. */
bool wt_bus_wait_delivery(const char *delivery_id, int timeout_ms);

/* Messages seen so far of (category, project); category NULL: any. */
size_t wt_bus_count(const char *category, long long project);

/* Messages seen for a deliveryId. */
size_t wt_bus_count_delivery(const char *delivery_id);

/* The i-th message seen (in arrival order), NULL past the end. */
const wt_message *wt_bus_message(size_t i);
size_t wt_bus_seen(void);

#endif
