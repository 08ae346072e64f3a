/*
 * server.c - a small HTTP/1.1 server on top of connection-core.
 *
 * The shape of the original epoll server: a handler that decides what to
 * answer, and a main() that initialises a Connection, turns the crank with
 * Connection_Process() and destroys it.  What went wrong in the original
 * (non-blocking setup, EPOLL_CTL_DEL before close, EPIPE and SIGPIPE,
 * partial writes, freeing client state) is the library's job now.
 *
 * Routes (HEAD works wherever GET does; the library sends the head only):
 *   GET  /               "Hello, World!"
 *   GET  /user/register  the original's failing route: a chunked body of
 *                        16 x 4096 bytes, all written inside the handler
 *   GET  /chunked?size=N N bytes (default 65536, at most 1 GiB) that the
 *                        library pulls from a producer as the client reads
 *   GET  /big            1 MiB lent with Response_SendBorrowed (not copied)
 *   POST /echo           the request body back
 *   GET  /stats          Connection_GetStats as JSON
 *   GET  /delay?ms=N     answered after an application timer of N ms
 *                        (N <= 60000, else 400): "waited N ms; K other
 *                        delays pending"
 *   anything else: 404; a known path with another method: 405.
 * Generated bodies repeat one 64-byte line, so a client can check them.
 *
 * ./server --help lists the options.  SIGINT or SIGTERM: in-flight
 * responses finish, then the program exits 0.
 *
 * --access-log FILE appends one line per request to FILE in nginx's
 * "combined" format, from the library's completion record (called once the
 * response has left, or the connection ended).  The record outlives the
 * request, not its headers: the handler keeps each request's Referer and
 * User-Agent in a small table keyed by Request_Id, and a request the
 * handler never saw (one the library refused) logs "-" for them.
 *
 * Listening: host:port by default; --unix PATH adds a Unix domain socket
 * (for nginx's proxy_pass http://unix:PATH); --systemd serves the sockets
 * systemd's socket activation hands over instead of host:port (see
 * systemd/ beside this file).
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connection.h"

static const char PATTERN[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n";

static Connection conn;           /* file scope for the signal handler */
static FILE *access_log;          /* --access-log; NULL: none */
static uint8_t big[1024 * 1024]; /* the body of /big, filled in main() */

/* Byte i of every generated body is PATTERN[i % 64]; buf starts at offset. */
static void fill(uint8_t *buf, size_t len, uint64_t offset)
{
    size_t i;

    for (i = 0; i < len; i++)
        buf[i] = (uint8_t)PATTERN[(offset + i) % 64];
}

/* Response_* errors are ignored here and below: the only likely one is
 * CONNECTION_ERR_CLOSED (the client left, the library has cleaned up). */
static void reply(Response *resp, int status, const char *type, const char *body)
{
    Response_SetStatus(resp, status);
    Response_AddHeader(resp, "Content-Type", type);
    Response_Send(resp, body, strlen(body));
}

static void hello(const Request *req, Response *resp)
{
    (void)req;
    reply(resp, 200, "text/plain", "Hello, World!");
}

static void user_register(const Request *req, Response *resp)
{
    uint8_t chunk[4096];
    int i;

    (void)req;
    Response_SetStatus(resp, 200);
    Response_AddHeader(resp, "Content-Type", "text/plain");
    if (Response_BeginChunked(resp) != CONNECTION_OK) {
        reply(resp, 500, "text/plain", "Internal Server Error");
        return;
    }
    /* The library queues every chunk.  It answers CONNECTION_ERR_CLOSED once
     * the client is gone, and CONNECTION_ERR_WOULD_BLOCK above the config's
     * output_high_water: a handler cannot wait for the client, so the body
     * stops there (/chunked shows how to send what must wait). */
    for (i = 0; i < 16; i++) {
        fill(chunk, sizeof chunk, (uint64_t)i * sizeof chunk);
        if (Response_WriteChunk(resp, chunk, sizeof chunk) != CONNECTION_OK)
            break;
    }
    Response_End(resp); /* exactly once after BeginChunked, in every case */
}

struct stream { uint64_t sent, left; };

/* Called by the library whenever the client can take more (cap >= 1). */
static ptrdiff_t produce(void *user, uint8_t *buf, size_t cap)
{
    struct stream *s = user;
    size_t n = s->left < cap ? (size_t)s->left : cap;

    fill(buf, n, s->sent);
    s->sent += n;
    s->left -= n;
    return (ptrdiff_t)n; /* 0: the body is complete */
}

/* Called exactly once per stream, whatever the reason it ended. */
static void stream_done(void *user, ConnectionCloseReason reason)
{
    (void)reason;
    free(user);
}

/* N from "size=N" in the query (at most 1 GiB); returns 0 if N is no number. */
static int size_param(const char *query, uint64_t *size)
{
    const char *p = query;
    unsigned long long n;
    char *end;

    while (*p != '\0' && strncmp(p, "size=", 5) != 0) {
        p += strcspn(p, "&"); /* on to the next parameter */
        if (*p == '&')
            p++;
    }
    *size = 65536;
    if (*p == '\0')
        return 1;
    p += 5;
    n = strtoull(p, &end, 10);
    if (*p < '0' || *p > '9' || (*end != '\0' && *end != '&'))
        return 0;
    *size = n < (1u << 30) ? n : (1u << 30); /* ERANGE gives ULLONG_MAX */
    return 1;
}

static void chunked(const Request *req, Response *resp)
{
    struct stream *s;
    uint64_t size;

    if (!size_param(Request_Query(req, NULL), &size)) {
        reply(resp, 400, "text/plain", "Bad Request");
        return;
    }
    s = malloc(sizeof *s);
    if (s == NULL) {
        reply(resp, 503, "text/plain", "Service Unavailable");
        return;
    }
    s->sent = 0;
    s->left = size;
    Response_SetStatus(resp, 200);
    Response_AddHeader(resp, "Content-Type", "application/octet-stream");
    /* Once accepted, s belongs to the stream until stream_done frees it. */
    if (Response_Stream(resp, produce, stream_done, s) != CONNECTION_OK) {
        free(s);
        reply(resp, 500, "text/plain", "Internal Server Error");
    }
}

static void send_big(const Request *req, Response *resp)
{
    (void)req;
    Response_SetStatus(resp, 200);
    Response_AddHeader(resp, "Content-Type", "application/octet-stream");
    /* Lent, not copied: the library sends straight from big, so a slow
     * client costs no copy of it.  big is static and never changes, so
     * nothing has to happen when the library is done with it: no release. */
    Response_SendBorrowed(resp, big, sizeof big, NULL, NULL);
}

static void echo(const Request *req, Response *resp)
{
    size_t len;
    const uint8_t *body = Request_Body(req, &len);

    Response_SetStatus(resp, 200);
    Response_AddHeader(resp, "Content-Type", "application/octet-stream");
    Response_Send(resp, body, len);
}

static void stats(const Request *req, Response *resp)
{
    ConnectionStats s;
    char json[1024];

    (void)req;
    if (Connection_GetStats(&conn, &s) != CONNECTION_OK) {
        reply(resp, 500, "text/plain", "Internal Server Error");
        return;
    }
    snprintf(json, sizeof json,
             "{\"active_connections\": %" PRIu64 ", \"accepted\": %" PRIu64
             ", \"requests\": %" PRIu64 ", \"responses\": %" PRIu64
             ", \"closed_completed\": %" PRIu64 ", \"closed_peer\": %" PRIu64
             ", \"closed_reset\": %" PRIu64 ", \"closed_timeout\": %" PRIu64
             ", \"closed_limit\": %" PRIu64 ", \"closed_protocol\": %" PRIu64
             ", \"closed_shutdown\": %" PRIu64 ", \"closed_error\": %" PRIu64
             ", \"accept_paused\": %" PRIu64 ", \"accept_fd_exhausted\": %" PRIu64 "}\n",
             s.active_connections, s.accepted, s.requests, s.responses,
             s.closed_completed, s.closed_peer, s.closed_reset, s.closed_timeout,
             s.closed_limit, s.closed_protocol, s.closed_shutdown, s.closed_error,
             s.accept_paused, s.accept_fd_exhausted);
    reply(resp, 200, "application/json", json);
}

/* GET /delay?ms=N: the response is deferred and a timer answers it.  The
 * struct delay is the timer task's: delay_fire ends it, once, whether the
 * timer fired (answer), was cancelled by delay_closed because the client
 * left first, or was cancelled by Connection_Destroy.  So a client that
 * leaves frees its timer and memory at once, not N ms later. */
struct delay {
    Response *resp;
    uint64_t timer;
    unsigned ms;
};

static unsigned long delays_pending;

static void delay_fire(Connection *c, void *arg, int cancelled)
{
    struct delay *d = arg;
    char body[80];

    (void)c;
    delays_pending--;
    if (!cancelled) {
        snprintf(body, sizeof body, "waited %u ms; %lu other delays pending\n", d->ms,
                 delays_pending);
        reply(d->resp, 200, "text/plain", body);
    }
    Response_Release(d->resp);
    free(d);
}

/* The deferred response's on_close: the client left (or a timeout, or the
 * shutdown).  delay_fire(.., 1) runs inside Connection_CancelTimer. */
static void delay_closed(void *user, enum ConnectionCloseReason reason)
{
    struct delay *d = user;

    (void)reason;
    Connection_CancelTimer(&conn, d->timer);
}

static void delay(const Request *req, Response *resp)
{
    const char *q = Request_Query(req, NULL);
    unsigned long long ms;
    struct delay *d;
    char *end;

    if (strncmp(q, "ms=", 3) != 0 || q[3] < '0' || q[3] > '9' ||
        (ms = strtoull(q + 3, &end, 10)) > 60000 || *end != '\0') {
        reply(resp, 400, "text/plain", "Bad Request: /delay?ms=N, N <= 60000\n");
        return;
    }
    d = malloc(sizeof *d);
    if (d == NULL) {
        reply(resp, 503, "text/plain", "Service Unavailable");
        return;
    }
    d->resp = resp;
    d->ms = (unsigned)ms;
    if (Response_Defer(resp, delay_closed, d) != CONNECTION_OK) {
        free(d); /* not deferred: the library answers 500 */
        return;
    }
    if (Connection_AddTimer(&conn, (int64_t)ms, delay_fire, d, &d->timer) != CONNECTION_OK) {
        reply(resp, 503, "text/plain", "Service Unavailable");
        Response_Release(resp);
        free(d);
        return;
    }
    delays_pending++; /* from here d is delay_fire's */
}

static const struct {
    const char *method, *path;
    void (*fn)(const Request *req, Response *resp);
} routes[] = {
    {"GET", "/", hello},
    {"GET", "/user/register", user_register},
    {"GET", "/chunked", chunked},
    {"GET", "/big", send_big},
    {"POST", "/echo", echo},
    {"GET", "/stats", stats},
    {"GET", "/delay", delay},
};

/* What the access log needs of a request's headers, kept from the handler
 * until its completion record: slot id % LOG_SLOTS.  With more requests in
 * flight than slots, a reused slot no longer matches and "-" is logged. */
#define LOG_SLOTS 256
static struct {
    uint64_t id;
    char referer[128], agent[256];
} seen[LOG_SLOTS];

/* The header's value (at most cap - 1 bytes), or "" when absent. */
static void keep_header(const Request *req, const char *name, char *out, size_t cap)
{
    size_t len;
    const char *v = Request_Header(req, name, &len);

    if (v == NULL)
        len = 0;
    if (len > cap - 1)
        len = cap - 1;
    memcpy(out, v != NULL ? v : "", len);
    out[len] = '\0';
}

static void remember_headers(const Request *req)
{
    uint64_t id = Request_Id(req);
    size_t slot = (size_t)(id % LOG_SLOTS);

    seen[slot].id = id;
    keep_header(req, "Referer", seen[slot].referer, sizeof seen[slot].referer);
    keep_header(req, "User-Agent", seen[slot].agent, sizeof seen[slot].agent);
}

/* Writes s (len bytes) as nginx escapes log fields: '"', '\\', control
 * and non-ASCII bytes as \xHH; "-" when empty. */
static void log_field(FILE *f, const char *s, size_t len)
{
    size_t i;

    if (len == 0) {
        fputc('-', f);
        return;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            fprintf(f, "\\x%02X", c);
        else
            fputc(c, f);
    }
}

/* The ConnectionCompletionHandler: one combined-format line per request:
 * $remote_addr - - [$time_local] "$request" $status $body_bytes_sent
 * "$http_referer" "$http_user_agent" */
static void on_complete(const ConnectionCompletion *r, void *user)
{
    size_t slot = (size_t)(r->request_id % LOG_SLOTS);
    int known = seen[slot].id == r->request_id;
    time_t when = (time_t)((r->start_us + r->duration_us) / 1000000);
    uint64_t body = r->bytes_out > r->head_bytes ? r->bytes_out - r->head_bytes : 0;
    char stamp[64];
    struct tm tm;

    (void)user;
    localtime_r(&when, &tm);
    strftime(stamp, sizeof stamp, "%d/%b/%Y:%H:%M:%S %z", &tm);
    fprintf(access_log, "%s - - [%s] \"", r->remote_addr, stamp);
    if (r->method_len > 0) {
        log_field(access_log, r->method, r->method_len);
        fputc(' ', access_log);
        log_field(access_log, r->target, r->target_len);
        if (r->http_version != 0)
            fprintf(access_log, " HTTP/%d.%d", r->http_version / 10, r->http_version % 10);
    } else {
        fputc('-', access_log);
    }
    fprintf(access_log, "\" %d %" PRIu64 " \"", r->status, body);
    log_field(access_log, known ? seen[slot].referer : "", known ? strlen(seen[slot].referer) : 0);
    fputs("\" \"", access_log);
    log_field(access_log, known ? seen[slot].agent : "", known ? strlen(seen[slot].agent) : 0);
    fputs("\"\n", access_log);
    fflush(access_log);
}

/* The ConnectionHandler: runs inside Connection_Process() for each request. */
static void on_request(const Request *req, Response *resp, void *user)
{
    const char *method = Request_Method(req, NULL);
    const char *path = Request_Path(req, NULL);
    size_t i;

    (void)user;
    if (access_log != NULL)
        remember_headers(req);
    for (i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        int get = strcmp(routes[i].method, "GET") == 0;

        if (strcmp(path, routes[i].path) != 0)
            continue;
        if (strcmp(method, routes[i].method) == 0 || (get && strcmp(method, "HEAD") == 0)) {
            routes[i].fn(req, resp);
        } else {
            Response_AddHeader(resp, "Allow", get ? "GET, HEAD" : routes[i].method);
            reply(resp, 405, "text/plain", "Method Not Allowed");
        }
        return;
    }
    reply(resp, 404, "text/plain", "Not Found");
}

/* Connection_Stop() only writes to an eventfd, so it is async-signal-safe.
 * Process() then stops accepting, lets in-flight responses finish (for at
 * most the config's drain_timeout_ms) and returns CONNECTION_STOPPED. */
static void on_signal(int sig)
{
    int saved_errno = errno;

    (void)sig;
    Connection_Stop(&conn);
    errno = saved_errno;
}

static const char usage[] =
    "usage: %s [--host ADDR] [--port N] [--max-connections N]\n"
    "          [--header-timeout-ms N] [--idle-timeout-ms N] [--access-log FILE]\n"
    "          [--unix PATH] [--systemd]\n"
    "defaults: 127.0.0.1, 8080 (0: any free port), then ConnectionConfig_Default\n"
    "--unix PATH: also listen on a Unix socket at PATH (mode 0660)\n"
    "--systemd: serve the sockets passed by socket activation (LISTEN_FDS)\n"
    "           instead of --host/--port\n";

static const struct option options[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"max-connections", required_argument, NULL, 'c'},
    {"header-timeout-ms", required_argument, NULL, 't'},
    {"idle-timeout-ms", required_argument, NULL, 'i'},
    {"access-log", required_argument, NULL, 'a'},
    {"unix", required_argument, NULL, 'u'},
    {"systemd", no_argument, NULL, 's'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* An option's value: a plain decimal number up to max, or exit 2. */
static unsigned long number(const char *s, unsigned long max)
{
    char *end;
    unsigned long long n = strtoull(s, &end, 10); /* ERANGE: ULLONG_MAX */

    if (*s < '0' || *s > '9' || *end != '\0' || n > max) {
        fprintf(stderr, "bad value '%s' (want a number up to %lu)\n", s, max);
        exit(2);
    }
    return (unsigned long)n;
}

int main(int argc, char **argv)
{
    ConnectionConfig cfg;
    struct sigaction sa;
    const char *unix_path = NULL;
    int opt, rc, systemd = 0;

    ConnectionConfig_Default(&cfg);
    cfg.host = "127.0.0.1"; /* rather than the library's 0.0.0.0 */
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'H': cfg.host = optarg; break; /* the library copies it */
        case 'p': cfg.port = (uint16_t)number(optarg, UINT16_MAX); break;
        case 'c': cfg.max_connections = (uint32_t)number(optarg, UINT32_MAX); break;
        case 't': cfg.header_timeout_ms = (uint32_t)number(optarg, UINT32_MAX); break;
        case 'i': cfg.idle_timeout_ms = (uint32_t)number(optarg, UINT32_MAX); break;
        case 'a':
            access_log = fopen(optarg, "a");
            if (access_log == NULL) {
                perror(optarg);
                return 1;
            }
            break;
        case 'u': unix_path = optarg; break;
        case 's': systemd = 1; break;
        case 'h': printf(usage, argv[0]); return 0;
        default: fprintf(stderr, usage, argv[0]); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, usage, argv[0]);
        return 2;
    }
    fill(big, sizeof big, 0);

    cfg.no_default_listener = systemd; /* the handed sockets replace host:port */
    rc = Connection_InitWith(&conn, &cfg);
    if (rc != CONNECTION_OK) {
        fprintf(stderr, "cannot listen on %s:%u: %s\n", cfg.host, (unsigned)cfg.port,
                Connection_StrError(rc));
        return 1;
    }
    if (systemd) {
        /* 1: unset LISTEN_* so that no child of ours takes them too. */
        rc = Connection_AddSystemdListeners(&conn, 1);
        if (rc < 0) {
            fprintf(stderr, "socket activation: %s\n", Connection_StrError(rc));
            Connection_Destroy(&conn);
            return 1;
        }
        for (opt = 0; opt < rc; opt++) /* names from FileDescriptorName= */
            printf("socket %d: %s\n", opt, Connection_ListenerName(&conn, opt));
    }
    if (unix_path != NULL) {
        rc = Connection_AddListenUnix(&conn, unix_path, 0660);
        if (rc < 0) {
            fprintf(stderr, "cannot listen on %s: %s\n", unix_path, Connection_StrError(rc));
            Connection_Destroy(&conn);
            return 1;
        }
        printf("unix socket %s\n", unix_path);
    }
    Connection_SetHandler(&conn, on_request, NULL);
    if (access_log != NULL)
        Connection_SetCompletionHandler(&conn, on_complete, NULL);

    /* SIGPIPE keeps its default action on purpose: the library promises
     * never to raise it (every send uses MSG_NOSIGNAL), so none is ignored. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (systemd) /* listener 0 is the first socket handed over */
        printf("listening on systemd:%d\n", Connection_Port(&conn));
    else
        printf("listening on %s:%d\n", cfg.host, Connection_Port(&conn));
    fflush(stdout);

    while ((rc = Connection_Process(&conn)) == CONNECTION_OK)
        ;

    sigprocmask(SIG_BLOCK, &sa.sa_mask, NULL); /* conn is about to go away */
    Connection_Destroy(&conn); /* the last records are written in here */
    if (access_log != NULL)
        fclose(access_log);
    if (rc != CONNECTION_STOPPED) {
        fprintf(stderr, "Connection_Process: %s\n", Connection_StrError(rc));
        return 1;
    }
    return 0;
}
