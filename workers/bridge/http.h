/* The bridge's HTTP side: libmicrohttpd with internal epoll polling threads
 * and suspend/resume, so no thread waits for a worker: a request is
 * transcoded into a command, its connection suspended, and resumed by the
 * AMQP thread when the reply (or the timeout) comes. */
#ifndef BR_HTTP_H
#define BR_HTTP_H

/* Reads the http_* keys of the config and starts listening. 0 or -1. */
int br_http_start(void);

/* Stops accepting connections (requests on open ones still complete). */
void br_http_quiesce(void);

/* Closes every connection and stops the daemon. Call after br_rpc_stop, so
 * that no connection is still suspended. */
void br_http_stop(void);

#endif
