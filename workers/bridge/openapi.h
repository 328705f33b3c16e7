/* The API's description, generated from the route table (never written
 * beside it): GET /api/openapi.json, which the Swagger UI page at /api/docs/
 * (web/docs/, a BR_STATIC route) reads. */
#ifndef BR_OPENAPI_H
#define BR_OPENAPI_H

/* The OpenAPI 3.0 document of br_routes as compact JSON text (caller frees),
 * or NULL when out of memory. Every operation carries operationId (unique:
 * the command, suffixed where a command serves several rows), x-command (the
 * command itself), x-auth and security. */
char *br_openapi_json(void);

/* The same commands and the events over AMQP as AsyncAPI 3.0 (workers/bridge/asyncapi.c):
 * malloc'd, the caller frees. */
char *br_asyncapi_json(void);

#endif
