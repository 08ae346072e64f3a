/*
 * server.c - a small HTTP/1.1 server on top of connection-core.
 *
 * It keeps the shape of the original epoll server that stopped answering
 * after an EPIPE: the caller owns a Connection, initialises it, and turns
 * the crank with Connection_Process() in its own loop.  Everything that
 * went wrong in the original (non-blocking setup, EPOLL_CTL_DEL before
 * close, EPIPE/SIGPIPE, partial writes, freeing client state) is now the
 * library's job, so this file only decides what to answer.
 *
 * Routes:
 *   GET  /               200 "Hello, World!" (text/plain)
 *   GET  /user/register  chunked: BeginChunked + 16 x 4096-byte chunks + End,
 *                        all written inside the handler (the original's
 *                        failing route)
 *   GET  /chunked?size=N pull stream of N bytes (default 65536, capped at
 *                        1 GiB; non-numeric size -> 400)
 *   GET  /big            1 MiB body through Response_Send
 *   POST /echo           the request body back
 *   GET  /stats          JSON: Connection_GetStats plus stream cleanup reasons
 *                        (also ?format=json); ?format=text: nginx stub_status
 *                        form, for monitoring that already scrapes nginx
 *   other paths -> 404, wrong method on a known path -> 405.
 *
 * HEAD is allowed wherever GET is: the handler answers as for GET and the
 * library sends the head only (Content-Length kept for Response_Send; no
 * chunks for Response_BeginChunked / Response_Stream).
 *
 * Every generated body (/user/register, /chunked, /big) is the same
 * repeating 64-byte pattern, PATTERN below, starting at offset 0, so a
 * client can check byte i against PATTERN[i % 64].
 *
 * SIGPIPE is deliberately left at its default disposition: the library
 * promises never to raise it (MSG_NOSIGNAL on every send), and a test that
 * aborts clients would kill this process if that promise were broken.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "connection.h"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 8080u

#define CHUNKED_DEFAULT_SIZE 65536u
#define CHUNKED_MAX_SIZE (UINT64_C(1) << 30)

#define REGISTER_CHUNKS 16
#define REGISTER_CHUNK_SIZE 4096

#define BIG_SIZE (1024u * 1024u)

/* One slot per ConnectionCloseReason (COMPLETED .. PROTOCOL). */
#define NUM_CLOSE_REASONS ((size_t)CONNECTION_CLOSE_PROTOCOL + 1)

/* 10 digits + 26 + 26 letters + '+' + '\n' = 64 bytes. */
static const char PATTERN[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n";
#define PATTERN_LEN (sizeof PATTERN - 1)

/*
 * File scope rather than main()'s stack only because the signal handler has
 * to reach it; main() still allocates nothing else for it (caller-allocated
 * storage, as the API requires).
 */
static Connection conn;

/* Cleared by the signal handler; main() only uses it to say "draining". */
static volatile sig_atomic_t running = 1;

/* Body of GET /big, filled once in main() before the first request. */
static uint8_t big_body[BIG_SIZE];

/*
 * Stream cleanup reasons, indexed by ConnectionCloseReason.  Callbacks run
 * inside Connection_Process() on the main thread, which is also the only
 * reader (GET /stats), so plain counters need no locking.
 */
static uint64_t cleanup_counts[NUM_CLOSE_REASONS];
static uint64_t cleanup_unknown;    /* a reason outside the enum: a library bug */
static uint64_t register_truncated; /* /user/register hit output_high_water */
static uint64_t streams_started;    /* Response_Stream calls that returned 0 */

/* JSON key suffixes; our own names so /stats does not depend on the
 * exact spelling Connection_CloseReasonName() returns. */
static const char *const reason_keys[NUM_CLOSE_REASONS] = {
    [CONNECTION_CLOSE_COMPLETED] = "completed",
    [CONNECTION_CLOSE_PEER_CLOSED] = "peer_closed",
    [CONNECTION_CLOSE_RESET] = "reset",
    [CONNECTION_CLOSE_TIMEOUT] = "timeout",
    [CONNECTION_CLOSE_SHUTDOWN] = "shutdown",
    [CONNECTION_CLOSE_ERROR] = "error",
    [CONNECTION_CLOSE_LIMIT] = "limit",
    [CONNECTION_CLOSE_PROTOCOL] = "protocol",
};

/* Write len bytes of the pattern into buf, as if the body started at 0 and
 * buf holds the bytes from 'offset' on. */
static void fill_pattern(uint8_t *buf, size_t len, uint64_t offset)
{
    size_t pos = (size_t)(offset % PATTERN_LEN);

    while (len > 0) {
        size_t n = PATTERN_LEN - pos;
        if (n > len)
            n = len;
        memcpy(buf, PATTERN + pos, n);
        buf += n;
        len -= n;
        pos = 0;
    }
}

/*
 * Send a complete small response.  Failures are ignored on purpose: the
 * only realistic one is CONNECTION_ERR_CLOSED (client gone), and then there
 * is nobody left to tell; the library has already cleaned up.
 */
static void send_text(Response *resp, int status, const char *content_type,
                      const char *body)
{
    (void)Response_SetStatus(resp, status);
    (void)Response_AddHeader(resp, "Content-Type", content_type);
    (void)Response_Send(resp, body, strlen(body));
}

/* ---- GET / ------------------------------------------------------------ */

static void handle_hello(const Request *req, Response *resp, Connection *c)
{
    (void)req;
    (void)c;
    send_text(resp, 200, "text/plain", "Hello, World!");
}

/* ---- GET /user/register ------------------------------------------------ */

/*
 * The route that used to hang the original server: headers go out, then a
 * body write hits EPIPE.  Here every write is queued by the library, and a
 * vanished client only turns later calls into CONNECTION_ERR_CLOSED.
 */
static void handle_register(const Request *req, Response *resp, Connection *c)
{
    uint8_t chunk[REGISTER_CHUNK_SIZE];
    int rc;
    int i;

    (void)req;
    (void)c;
    (void)Response_SetStatus(resp, 200);
    (void)Response_AddHeader(resp, "Content-Type", "text/plain");

    rc = Response_BeginChunked(resp);
    if (rc != CONNECTION_OK) {
        /* Nothing was started, so a plain error response is still possible
         * (it fails harmlessly if the client is gone). */
        send_text(resp, 500, "text/plain", "Internal Server Error");
        return;
    }

    for (i = 0; i < REGISTER_CHUNKS; i++) {
        fill_pattern(chunk, sizeof chunk, (uint64_t)i * REGISTER_CHUNK_SIZE);
        rc = Response_WriteChunk(resp, chunk, sizeof chunk);
        if (rc == CONNECTION_OK)
            continue;
        /*
         * CLOSED: the client left; stop producing.  WOULD_BLOCK: the output
         * queue is above output_high_water (only with a tiny
         * --output-high-water, 64 KiB fits the default).  A handler cannot
         * wait for the socket - Process() is not re-entrant - so the body is
         * cut short; /stats counts it so a test can tell.  Use /chunked
         * (Response_Stream) for bodies that must respect back-pressure.
         */
        if (rc == CONNECTION_ERR_WOULD_BLOCK)
            register_truncated++;
        break;
    }

    /* Always exactly once after BeginChunked: it releases the handle, and
     * returns CONNECTION_ERR_CLOSED (ignored) if the client is gone. */
    (void)Response_End(resp);
}

/* ---- GET /chunked?size=N ----------------------------------------------- */

struct stream_state {
    uint64_t total;    /* bytes to produce */
    uint64_t produced; /* bytes handed to the library so far */
};

/* Called by the library only when the socket can take more. */
static ptrdiff_t chunked_produce(void *user, uint8_t *buf, size_t cap)
{
    struct stream_state *st = user;
    uint64_t left = st->total - st->produced;
    size_t n;

    if (left == 0)
        return 0; /* end of body */
    if (cap == 0)
        return -1; /* 0 would mean "done" and silently truncate the body */

    n = cap;
    if ((uint64_t)n > left)
        n = (size_t)left;
    if (n > (size_t)PTRDIFF_MAX)
        n = (size_t)PTRDIFF_MAX;

    fill_pattern(buf, n, st->produced);
    st->produced += n;
    return (ptrdiff_t)n;
}

/* Called exactly once per accepted stream, however it ended. */
static void chunked_cleanup(void *user, ConnectionCloseReason reason)
{
    size_t idx = (size_t)reason;

    free(user);
    if (idx < NUM_CLOSE_REASONS)
        cleanup_counts[idx]++;
    else
        cleanup_unknown++;
}

/*
 * Find "size=" among the '&'-separated query parameters.  Returns false
 * when it is present but not a plain decimal number (so "-1", "1e3", "" and
 * "0x10" are rejected).  Values above CHUNKED_MAX_SIZE are capped, and the
 * accumulation stops growing once past the cap so it cannot overflow.
 */
static bool parse_size_param(const char *query, uint64_t *out)
{
    const char *p = query;

    *out = CHUNKED_DEFAULT_SIZE;
    while (*p != '\0') {
        const char *amp = strchr(p, '&');
        size_t len = amp ? (size_t)(amp - p) : strlen(p);

        if (len >= 4 && memcmp(p, "size", 4) == 0 && (len == 4 || p[4] == '=')) {
            uint64_t n = 0;
            size_t i;

            if (len <= 5)
                return false; /* "size" or "size=" without a value */
            for (i = 5; i < len; i++) {
                if (p[i] < '0' || p[i] > '9')
                    return false;
                if (n <= CHUNKED_MAX_SIZE)
                    n = n * 10 + (uint64_t)(p[i] - '0');
            }
            *out = n > CHUNKED_MAX_SIZE ? CHUNKED_MAX_SIZE : n;
        }
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    return true;
}

static void handle_chunked(const Request *req, Response *resp, Connection *c)
{
    const char *query = Request_Query(req, NULL);
    struct stream_state *st;
    uint64_t size;
    int rc;

    (void)c;
    if (!parse_size_param(query ? query : "", &size)) {
        send_text(resp, 400, "text/plain", "Bad Request");
        return;
    }

    st = malloc(sizeof *st);
    if (st == NULL) {
        send_text(resp, 503, "text/plain", "Service Unavailable");
        return;
    }
    st->total = size;
    st->produced = 0;

    (void)Response_SetStatus(resp, 200);
    (void)Response_AddHeader(resp, "Content-Type", "application/octet-stream");
    rc = Response_Stream(resp, chunked_produce, chunked_cleanup, st);
    if (rc == CONNECTION_OK) {
        streams_started++;
    } else {
        /* Only a successful Response_Stream owns st (and calls cleanup). */
        free(st);
        send_text(resp, 500, "text/plain", "Internal Server Error");
    }
}

/* ---- GET /big ---------------------------------------------------------- */

static void handle_big(const Request *req, Response *resp, Connection *c)
{
    (void)req;
    (void)c;
    (void)Response_SetStatus(resp, 200);
    (void)Response_AddHeader(resp, "Content-Type", "application/octet-stream");
    /* Send copies, so the shared static buffer is never referenced later. */
    (void)Response_Send(resp, big_body, sizeof big_body);
}

/* ---- POST /echo -------------------------------------------------------- */

static void handle_echo(const Request *req, Response *resp, Connection *c)
{
    size_t len = 0;
    const uint8_t *body = Request_Body(req, &len);

    (void)c;
    if (body == NULL)
        len = 0; /* not expected for a valid request; send an empty body */
    (void)Response_SetStatus(resp, 200);
    (void)Response_AddHeader(resp, "Content-Type", "application/octet-stream");
    (void)Response_Send(resp, body ? (const void *)body : "", len);
}

/* ---- GET /stats -------------------------------------------------------- */

/* Append to a fixed buffer; returns false once it would overflow. */
static bool append(char *buf, size_t cap, size_t *used, const char *key,
                   uint64_t value)
{
    int n = snprintf(buf + *used, cap - *used, "%s\"%s\": %" PRIu64,
                     *used > 1 ? ", " : "", key, value);
    if (n < 0 || (size_t)n >= cap - *used)
        return false;
    *used += (size_t)n;
    return true;
}

/*
 * Find parameter `name` among the '&'-separated query parameters; returns
 * its value (not NUL-terminated: *len bytes) or NULL when absent.  A bare
 * "name" counts as present with an empty value.
 */
static const char *query_param(const char *query, const char *name, size_t *len)
{
    size_t nlen = strlen(name);
    const char *p = query;

    while (p != NULL && *p != '\0') {
        const char *amp = strchr(p, '&');
        size_t plen = amp ? (size_t)(amp - p) : strlen(p);

        if (plen >= nlen && memcmp(p, name, nlen) == 0 &&
            (plen == nlen || p[nlen] == '=')) {
            *len = plen > nlen ? plen - nlen - 1 : 0;
            return plen > nlen ? p + nlen + 1 : p + plen;
        }
        p = amp ? amp + 1 : NULL;
    }
    return NULL;
}

/*
 * nginx's stub_status page, byte for byte in its layout (including the
 * trailing spaces), so a collector written for nginx (Prometheus
 * nginx-exporter, collectd, Zabbix, telegraf, ...) can scrape this server:
 *
 *   Active connections: N
 *   server accepts handled requests
 *    A H R
 *   Reading: 0 Writing: W Waiting: I
 *
 * What ConnectionStats can honestly give, and where it is approximate:
 *   Active    = active_connections (exact).
 *   accepts   = accepted + accept_fd_exhausted: connections the kernel
 *               handed over, counting those taken only to be closed at
 *               once when descriptors ran out (an approximation: an
 *               EMFILE with no spare descriptor counts too).
 *   handled   = accepted: connections that got a slot (nginx's "handled"
 *               also excludes those dropped at a resource limit).
 *   requests  = requests handed to the handler; unlike nginx this does not
 *               count malformed requests the library answered itself.
 *   Reading   = 0: the stats do not split open connections by state.
 *   Writing   = responses this program knows to be in progress: this
 *               /stats request plus pull streams whose cleanup has not run
 *               yet (capped at Active).  Small responses already queued
 *               but still being flushed are not seen, so they show up in
 *               Waiting.
 *   Waiting   = Active - Writing: idle keep-alive connections, plus any
 *               connection still receiving its request head or flushing.
 */
static int format_stub_status(const ConnectionStats *s, char *buf, size_t cap)
{
    uint64_t ended = cleanup_unknown;
    uint64_t writing;
    uint64_t waiting;
    size_t i;

    for (i = 0; i < NUM_CLOSE_REASONS; i++)
        ended += cleanup_counts[i];
    writing = 1 + (streams_started > ended ? streams_started - ended : 0);
    if (writing > s->active_connections)
        writing = s->active_connections;
    waiting = s->active_connections - writing;

    return snprintf(buf, cap,
                    "Active connections: %" PRIu64 " \n"
                    "server accepts handled requests\n"
                    " %" PRIu64 " %" PRIu64 " %" PRIu64 " \n"
                    "Reading: 0 Writing: %" PRIu64 " Waiting: %" PRIu64 " \n",
                    s->active_connections,
                    s->accepted + s->accept_fd_exhausted, s->accepted,
                    s->requests, writing, waiting);
}

static void handle_stats(const Request *req, Response *resp, Connection *c)
{
    ConnectionStats s;
    char json[2048];
    char key[64];
    const char *format;
    size_t format_len = 0;
    bool text = false;
    size_t used = 1;
    bool ok = true;
    size_t i;
    int rc;

    format = query_param(Request_Query(req, NULL), "format", &format_len);
    if (format != NULL) {
        if (format_len == 4 && memcmp(format, "text", 4) == 0) {
            text = true;
        } else if (!(format_len == 4 && memcmp(format, "json", 4) == 0)) {
            send_text(resp, 400, "text/plain", "format must be json or text\n");
            return;
        }
    }

    rc = Connection_GetStats(c, &s);
    if (rc != CONNECTION_OK) {
        send_text(resp, 500, "text/plain", Connection_StrError(rc));
        return;
    }

    if (text) {
        int n = format_stub_status(&s, json, sizeof json);

        if (n < 0 || (size_t)n >= sizeof json) {
            send_text(resp, 500, "text/plain", "stats buffer too small");
            return;
        }
        (void)Response_SetStatus(resp, 200);
        (void)Response_AddHeader(resp, "Content-Type", "text/plain");
        (void)Response_Send(resp, json, (size_t)n);
        return;
    }

    json[0] = '{';
    json[1] = '\0';
#define FIELD(name) (ok = ok && append(json, sizeof json, &used, #name, s.name))
    FIELD(active_connections);
    FIELD(accepted);
    FIELD(requests);
    FIELD(responses);
    FIELD(closed_completed);
    FIELD(closed_peer);
    FIELD(closed_reset);
    FIELD(closed_timeout);
    FIELD(closed_limit);
    FIELD(closed_protocol);
    FIELD(closed_shutdown);
    FIELD(closed_error);
    FIELD(accept_paused);
    FIELD(accept_fd_exhausted);
#undef FIELD
    for (i = 0; i < NUM_CLOSE_REASONS; i++) {
        (void)snprintf(key, sizeof key, "cleanup_%s",
                       reason_keys[i] ? reason_keys[i] : "unnamed");
        ok = ok && append(json, sizeof json, &used, key, cleanup_counts[i]);
    }
    ok = ok && append(json, sizeof json, &used, "cleanup_unknown", cleanup_unknown);
    ok = ok && append(json, sizeof json, &used, "register_truncated",
                      register_truncated);
    ok = ok && append(json, sizeof json, &used, "streams_started",
                      streams_started);
    ok = ok && used + 3 <= sizeof json;
    if (!ok) {
        send_text(resp, 500, "text/plain", "stats buffer too small");
        return;
    }
    memcpy(json + used, "}\n", 3);
    used += 2;

    (void)Response_SetStatus(resp, 200);
    (void)Response_AddHeader(resp, "Content-Type", "application/json");
    (void)Response_Send(resp, json, used);
}

/* ---- routing ----------------------------------------------------------- */

typedef void (*route_fn)(const Request *req, Response *resp, Connection *c);

struct route {
    const char *path;
    const char *method;
    route_fn fn;
};

static const struct route routes[] = {
    {"/", "GET", handle_hello},
    {"/user/register", "GET", handle_register},
    {"/chunked", "GET", handle_chunked},
    {"/big", "GET", handle_big},
    {"/echo", "POST", handle_echo},
    {"/stats", "GET", handle_stats},
};

/* HEAD is served wherever GET is (the library drops the body). */
static bool method_allowed(const char *method, const char *allowed)
{
    return strcmp(method, allowed) == 0 ||
           (strcmp(allowed, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

/* The one ConnectionHandler; user is &conn (see main). */
static void on_request(const Request *req, Response *resp, void *user)
{
    const char *method = Request_Method(req, NULL);
    const char *path = Request_Path(req, NULL);
    size_t i;

    if (method == NULL || path == NULL) {
        send_text(resp, 500, "text/plain", "Internal Server Error");
        return;
    }
    for (i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(path, routes[i].path) != 0)
            continue;
        if (!method_allowed(method, routes[i].method)) {
            (void)Response_AddHeader(resp, "Allow",
                                     strcmp(routes[i].method, "GET") == 0
                                         ? "GET, HEAD"
                                         : routes[i].method);
            send_text(resp, 405, "text/plain", "Method Not Allowed");
            return;
        }
        routes[i].fn(req, resp, user);
        return;
    }
    send_text(resp, 404, "text/plain", "Not Found");
}

/* ---- signals ----------------------------------------------------------- */

/*
 * Connection_Stop() only writes to an eventfd, so it is async-signal-safe.
 * It asks Process() to stop accepting and to return CONNECTION_STOPPED once
 * in-flight responses have drained (bounded by drain_timeout_ms).
 */
static void on_signal(int sig)
{
    int saved_errno = errno;

    (void)sig;
    running = 0;
    (void)Connection_Stop(&conn);
    errno = saved_errno;
}

static int install_signal_handlers(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    /* No SA_RESTART: an interrupted epoll_wait just returns early, which
     * Process() treats as an empty batch. */
    sa.sa_flags = 0;
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return -1;
    return 0;
}

/* Once the loop is over the handler must not touch conn any more. */
static void block_signals(void)
{
    sigset_t set;

    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    (void)sigprocmask(SIG_BLOCK, &set, NULL);
}

/* ---- command line ------------------------------------------------------ */

static void usage(FILE *out, const char *prog)
{
    fprintf(out,
            "usage: %s [options]\n"
            "  --host H                 address to bind (default " DEFAULT_HOST ")\n"
            "  --port N                 port, 0 = ephemeral (default 8080)\n"
            "  --max-connections N\n"
            "  --header-timeout-ms N\n"
            "  --idle-timeout-ms N\n"
            "  --send-timeout-ms N\n"
            "  --output-high-water N    bytes\n"
            "  --max-body-bytes N\n"
            "  -h, --help\n",
            prog);
}

/* Strict unsigned decimal: no sign, no trailing junk, at most max. */
static bool parse_u64(const char *s, uint64_t max, uint64_t *out)
{
    unsigned long long v;
    char *end;

    if (s == NULL || *s < '0' || *s > '9')
        return false;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return false;
    *out = (uint64_t)v;
    return true;
}

/* Returns 0, or the exit status main() should return. */
static int parse_args(int argc, char **argv, ConnectionConfig *cfg)
{
    int i;

    for (i = 1; i < argc; i++) {
        const char *opt = argv[i];
        const char *val = NULL;
        const char *eq;
        char name[32];
        uint64_t n = 0;

        if (strcmp(opt, "-h") == 0 || strcmp(opt, "--help") == 0) {
            usage(stdout, argv[0]);
            return -1; /* caller exits 0 */
        }
        /* Accept both "--opt value" and "--opt=value". */
        eq = strchr(opt, '=');
        if (strncmp(opt, "--", 2) == 0 && eq != NULL &&
            (size_t)(eq - opt) < sizeof name) {
            memcpy(name, opt, (size_t)(eq - opt));
            name[eq - opt] = '\0';
            opt = name;
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[i + 1];
        }

#define TAKES_VALUE()                                                        \
    do {                                                                     \
        if (val == NULL)                                                     \
            goto missing;                                                    \
        if (opt != name)                                                     \
            i++;                                                             \
    } while (0)
#define NUMBER(max)                                                          \
    do {                                                                     \
        TAKES_VALUE();                                                       \
        if (!parse_u64(val, (max), &n))                                      \
            goto bad_value;                                                  \
    } while (0)

        if (strcmp(opt, "--host") == 0) {
            TAKES_VALUE();
            if (*val == '\0')
                goto bad_value;
            cfg->host = val; /* copied by Connection_InitWith */
        } else if (strcmp(opt, "--port") == 0) {
            NUMBER(UINT16_MAX);
            cfg->port = (uint16_t)n;
        } else if (strcmp(opt, "--max-connections") == 0) {
            NUMBER(UINT32_MAX);
            cfg->max_connections = (uint32_t)n;
        } else if (strcmp(opt, "--header-timeout-ms") == 0) {
            NUMBER(UINT32_MAX);
            cfg->header_timeout_ms = (uint32_t)n;
        } else if (strcmp(opt, "--idle-timeout-ms") == 0) {
            NUMBER(UINT32_MAX);
            cfg->idle_timeout_ms = (uint32_t)n;
        } else if (strcmp(opt, "--send-timeout-ms") == 0) {
            NUMBER(UINT32_MAX);
            cfg->send_timeout_ms = (uint32_t)n;
        } else if (strcmp(opt, "--output-high-water") == 0) {
            NUMBER(UINT64_MAX);
            cfg->output_high_water = n;
        } else if (strcmp(opt, "--max-body-bytes") == 0) {
            NUMBER(UINT64_MAX);
            cfg->max_body_bytes = n;
        } else {
            fprintf(stderr, "%s: unknown option '%s'\n", argv[0], argv[i]);
            usage(stderr, argv[0]);
            return 2;
        }
#undef NUMBER
#undef TAKES_VALUE
        continue;

    missing:
        fprintf(stderr, "%s: option '%s' needs a value\n", argv[0], opt);
        usage(stderr, argv[0]);
        return 2;
    bad_value:
        fprintf(stderr, "%s: bad value '%s' for %s\n", argv[0], val, opt);
        usage(stderr, argv[0]);
        return 2;
    }
    return 0;
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    ConnectionConfig cfg;
    int exit_code = 0;
    bool said_draining = false;
    int port;
    int rc;

    rc = ConnectionConfig_Default(&cfg);
    if (rc != CONNECTION_OK) {
        fprintf(stderr, "%s: ConnectionConfig_Default: %s\n", argv[0],
                Connection_StrError(rc));
        return 1;
    }
    /* Loopback unless asked otherwise, unlike the library's 0.0.0.0. */
    cfg.host = DEFAULT_HOST;
    cfg.port = DEFAULT_PORT;

    rc = parse_args(argc, argv, &cfg);
    if (rc != 0)
        return rc < 0 ? 0 : rc;

    fill_pattern(big_body, sizeof big_body, 0);

    rc = Connection_InitWith(&conn, &cfg);
    if (rc != CONNECTION_OK) {
        fprintf(stderr, "%s: cannot listen on %s:%u: %s\n", argv[0], cfg.host,
                (unsigned)cfg.port, Connection_StrError(rc));
        return 1;
    }
    rc = Connection_SetHandler(&conn, on_request, &conn);
    if (rc == CONNECTION_OK) {
        port = Connection_Port(&conn);
        if (port < 0)
            rc = port;
    }
    if (rc == CONNECTION_OK && install_signal_handlers() != 0) {
        perror("sigaction");
        Connection_Destroy(&conn);
        return 1;
    }
    if (rc != CONNECTION_OK) {
        fprintf(stderr, "%s: %s\n", argv[0], Connection_StrError(rc));
        Connection_Destroy(&conn);
        return 1;
    }

    /* Handlers are in place first, so a SIGINT sent as soon as a test sees
     * this line already drains instead of killing the process. */
    printf("listening on %s:%d\n", cfg.host, port);
    fflush(stdout);

    /*
     * The original "while (running) Connection_Process(&conn);", except
     * that a signal does not end the loop by itself: Process() keeps
     * serving in-flight responses after Connection_Stop() and returns
     * CONNECTION_STOPPED only once they are drained.
     */
    for (;;) {
        rc = Connection_Process(&conn);
        if (rc == CONNECTION_STOPPED)
            break;
        if (rc < 0) {
            fprintf(stderr, "%s: Connection_Process: %s\n", argv[0],
                    Connection_StrError(rc));
            exit_code = 1;
            break;
        }
        if (!running && !said_draining) {
            fputs("stopping: draining in-flight responses\n", stderr);
            said_draining = true;
        }
    }

    block_signals();
    Connection_Destroy(&conn);
    return exit_code;
}
