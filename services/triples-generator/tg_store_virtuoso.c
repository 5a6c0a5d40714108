/*
 * The Virtuoso 7 adapter: everything this service knows that is Virtuoso's and not SPARQL 1.1's
 * (docs/internals/triples-generator.md, reference infra.md §4):
 *  - the endpoints: queries on /sparql (anonymous read), updates on /sparql-auth and the Graph
 *    Store Protocol on /sparql-graph-crud-auth with the graph in `graph-uri`, both digest-only
 *    (Basic gets 401);
 *  - its JSON results use the 2005 draft's "typed-literal" for datatyped literals, where
 *    SPARQL 1.1 has "literal" with a "datatype"; and it answers xsd:boolean values as "0"/"1"
 *    (which xsd allows, but SPARQL tools print "false"/"true"). Both are rewritten here.
 * Another store gets its own file with its own tg_store_dialect.
 */
#include <json-c/json.h>
#include <string.h>

#include "tg_store.h"

#define XSD_BOOLEAN "http://www.w3.org/2001/XMLSchema#boolean"

static void normalise_term(json_object *term)
{
    json_object *type, *datatype, *value;
    const char *v;

    if (!json_object_object_get_ex(term, "type", &type) ||
        strcmp(json_object_get_string(type), "typed-literal") != 0)
        return;
    json_object_object_add(term, "type", json_object_new_string("literal"));
    if (!json_object_object_get_ex(term, "datatype", &datatype) ||
        strcmp(json_object_get_string(datatype), XSD_BOOLEAN) != 0 ||
        !json_object_object_get_ex(term, "value", &value))
        return;
    v = json_object_get_string(value);
    if (strcmp(v, "0") == 0 || strcmp(v, "1") == 0)
        json_object_object_add(term, "value",
                               json_object_new_string(v[0] == '1' ? "true" : "false"));
}

static int virtuoso_normalise(json_object *root)
{
    json_object *results, *bindings;

    if (!json_object_is_type(root, json_type_object))
        return fg_error_set(FG_EINVALID, "triple store query: results are not a JSON object");
    if (!json_object_object_get_ex(root, "results", &results))
        return 0; /* an ASK answer: {"boolean": ...} */
    if (!json_object_object_get_ex(results, "bindings", &bindings) ||
        !json_object_is_type(bindings, json_type_array))
        return fg_error_set(FG_EINVALID, "triple store query: results without bindings");
    for (size_t i = 0; i < json_object_array_length(bindings); i++) {
        json_object *row = json_object_array_get_idx(bindings, i);
        if (!json_object_is_type(row, json_type_object))
            return fg_error_set(FG_EINVALID, "triple store query: a result row is no object");
        json_object_object_foreach(row, var, term)
        {
            (void)var;
            if (json_object_is_type(term, json_type_object))
                normalise_term(term);
        }
    }
    return 0;
}

const tg_store_dialect tg_store_virtuoso = {
    "virtuoso",  "/sparql",           "/sparql-auth",     "/sparql-graph-crud-auth",
    "graph-uri", FG_HTTP_AUTH_DIGEST, virtuoso_normalise,
};
