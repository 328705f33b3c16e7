/* The API's description, generated from the route table (never written
 * beside it): GET /api/openapi.json and the GET /api/docs/ page. */
#ifndef BR_OPENAPI_H
#define BR_OPENAPI_H

/* The OpenAPI 3.0 document of br_routes as compact JSON text (caller frees),
 * or NULL when out of memory. Every operation carries operationId (unique:
 * the command, suffixed where a command serves several rows), x-command (the
 * command itself), x-auth and security. */
char *br_openapi_json(void);

/* A self-contained HTML page (no CDN) that loads /api/openapi.json, lists the
 * operations and has a small "try it" form for each. */
extern const char br_openapi_docs_html[];

char *br_asyncapi_json(void);

#endif
