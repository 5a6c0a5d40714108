/*
 * fgctl sparql '<query>' (or '-' to read it from stdin): runs a read-only SPARQL query through
 * triples-generator's POST /sparql and prints TSV: a header row of the variable names, then one
 * row per result with each value in its plain lexical form (no quotes, datatypes or angle
 * brackets; an unbound variable is an empty field). A tab, newline, carriage return or backslash
 * inside a value prints as \t, \n, \r, \\ so that every result stays one line. An ASK query
 * prints true or false. --json prints the SPARQL 1.1 JSON results as they came.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "fg/buf.h"
#include "fgctl.h"

#define SPARQL_QUERY_MAX (1024 * 1024) /* bytes of a query (the service's own limit) */

static void usage(void)
{
    fprintf(stderr, "usage: fgctl [--json] sparql '<SPARQL query>' | -   (- reads stdin)\n");
}

static int read_stdin(fg_buf *out)
{
    char chunk[8192];
    size_t n;
    int rc = 0;

    while (rc == 0 && (n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        rc = fg_buf_put(out, chunk, n);
    return rc;
}

static void print_field(const char *s)
{
    for (; *s != '\0'; s++) {
        switch (*s) {
        case '\t':
            fputs("\\t", stdout);
            break;
        case '\n':
            fputs("\\n", stdout);
            break;
        case '\r':
            fputs("\\r", stdout);
            break;
        case '\\':
            fputs("\\\\", stdout);
            break;
        default:
            putchar(*s);
        }
    }
}

/* The TSV of a SELECT answer; FGCTL_EXIT_FAILED when it is not SPARQL JSON results. */
static int print_tsv(json_object *root)
{
    json_object *head, *vars, *results, *bindings, *boolean;

    if (json_object_object_get_ex(root, "boolean", &boolean)) {
        printf("%s\n", json_object_get_boolean(boolean) ? "true" : "false");
        return FGCTL_EXIT_OK;
    }
    if (!json_object_object_get_ex(root, "head", &head) ||
        !json_object_object_get_ex(head, "vars", &vars) ||
        !json_object_is_type(vars, json_type_array) ||
        !json_object_object_get_ex(root, "results", &results) ||
        !json_object_object_get_ex(results, "bindings", &bindings) ||
        !json_object_is_type(bindings, json_type_array)) {
        fprintf(stderr, "fgctl sparql: the answer is not SPARQL JSON results\n");
        return FGCTL_EXIT_FAILED;
    }
    for (size_t v = 0; v < json_object_array_length(vars); v++) {
        if (v > 0)
            putchar('\t');
        print_field(json_object_get_string(json_object_array_get_idx(vars, v)));
    }
    putchar('\n');
    for (size_t r = 0; r < json_object_array_length(bindings); r++) {
        json_object *row = json_object_array_get_idx(bindings, r), *term, *value;
        for (size_t v = 0; v < json_object_array_length(vars); v++) {
            const char *name = json_object_get_string(json_object_array_get_idx(vars, v));
            if (v > 0)
                putchar('\t');
            if (json_object_object_get_ex(row, name, &term) &&
                json_object_object_get_ex(term, "value", &value))
                print_field(json_object_get_string(value));
        }
        putchar('\n');
    }
    return FGCTL_EXIT_OK;
}

int fgctl_cmd_sparql(fgctl *ctl, int argc, char **argv)
{
    fg_buf query, body;
    json_object *answer = NULL;
    int status = FGCTL_EXIT_USAGE;

    fg_buf_init(&query, SPARQL_QUERY_MAX);
    fg_buf_init(&body, SPARQL_QUERY_MAX * 2 + 64);
    if (argc != 2 || argv[1][0] == '\0') {
        usage();
        goto done;
    }
    if (strcmp(argv[1], "-") == 0 ? read_stdin(&query) < 0 : fg_buf_puts(&query, argv[1]) < 0) {
        fprintf(stderr, "fgctl sparql: the query is longer than %d bytes\n", SPARQL_QUERY_MAX);
        goto done;
    }
    status = FGCTL_EXIT_FAILED;
    if (fg_buf_puts(&body, "{\"query\":\"") < 0 ||
        fg_buf_put_json_string(&body, query.ptr, query.len) < 0 || fg_buf_puts(&body, "\"}") < 0) {
        fprintf(stderr, "fgctl sparql: %s\n", fg_error_last());
        goto done;
    }
    if ((status = fgctl_call(&answer, ctl, "triples-generator", "sparql", "POST", "/sparql",
                             body.ptr)) != FGCTL_EXIT_OK)
        goto done;
    if (answer == NULL) {
        fprintf(stderr, "fgctl sparql: empty answer\n");
        status = FGCTL_EXIT_FAILED;
    } else if (ctl->json) {
        fgctl_print_json(answer);
    } else {
        status = print_tsv(answer);
    }
done:
    json_object_put(answer);
    fg_buf_dispose(&query);
    fg_buf_dispose(&body);
    return status;
}
