/*
 * websocket.c - an RFC 6455 WebSocket echo server on connection-core.
 *
 * The HTTP side is the library's, as in server.c: a handler and a main()
 * around Connection_InitWith / Connection_Process / Connection_Destroy.
 * The handler checks the opening handshake (GET, Sec-WebSocket-Version: 13,
 * a Sec-WebSocket-Key of 16 base64 bytes), computes Sec-WebSocket-Accept
 * (SHA-1 and base64, below) and calls Response_Upgrade().  Once the
 * library has sent "101 Switching Protocols" it hands over the socket (and
 * any bytes it had already read past the request) through on_upgrade();
 * from then on the socket is ours and the library never touches it again.
 *
 * The upgraded connections run on a thread of their own with a small epoll
 * loop (level-triggered): on_upgrade() passes each one to it through a
 * pipe.  Per connection:
 *   - client frames must be masked (else close 1002), RSV bits 0, known
 *     opcodes, control frames unfragmented and at most 125 bytes (1002);
 *   - text and binary messages are echoed, fragmented ones reassembled from
 *     continuation frames, up to MAX_MESSAGE bytes (more: close 1009, said
 *     as soon as the frame header announces it); text must be UTF-8 (1007);
 *   - ping -> pong with the same payload; a close is answered with the same
 *     code, then the socket is closed;
 *   - output is sent with send(MSG_NOSIGNAL); while more than OUT_HIGH bytes
 *     wait for a slow reader, nothing more is read from it (so its buffers
 *     stay bounded);
 *   - a connection silent for --idle-timeout-ms, or not answering our close
 *     within CLOSE_TIMEOUT_MS, is dropped; one that vanishes (EOF, RST) in
 *     the middle of a frame is freed at once.
 *
 * GET / without an upgrade: a one-line text page; GET /stats: the
 * library's active_connections and upgraded counters and the number of
 * WebSockets open here.  A bad handshake: 400, or 426 with
 * Sec-WebSocket-Version: 13 for another version.
 *
 * ./websocket --help lists the options.  Prints "listening on HOST:PORT"
 * once ready.  SIGINT or SIGTERM: Connection_Stop(); once the library has
 * drained, the WebSocket thread closes its connections and the program
 * exits 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "connection.h"

#define MAX_MESSAGE (1024 * 1024)  /* largest message, fragments included */
#define OUT_HIGH (256 * 1024)      /* stop reading while more waits to go out */
#define IN_CHUNK (64 * 1024)       /* input buffer, grown to one whole frame */
#define CLOSE_TIMEOUT_MS 2000      /* our close sent: the client's answer */

static const char GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static Connection conn;            /* file scope for the signal handler */
static int pipe_w = -1;            /* on_upgrade -> the WebSocket thread */
static unsigned long idle_timeout_ms = 60000;
static unsigned long max_sockets = 1000;
static pthread_mutex_t count_lock = PTHREAD_MUTEX_INITIALIZER;
static unsigned long open_sockets; /* upgraded, not yet closed */

/* ---- SHA-1 (FIPS 180-4) and base64 (RFC 4648), just for the handshake ---- */

static uint32_t rol(uint32_t x, int n) { return (x << n) | (x >> (32 - n)); }

static void sha1_block(uint32_t h[5], const unsigned char *p)
{
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f, k, t;
    int i;

    for (i = 0; i < 16; i++)
        w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
               (uint32_t)p[4 * i + 2] << 8 | (uint32_t)p[4 * i + 3];
    for (i = 16; i < 80; i++)
        w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (i = 0; i < 80; i++) {
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5A827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ED9EBA1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8F1BBCDC;
        } else {
            f = b ^ c ^ d;
            k = 0xCA62C1D6;
        }
        t = rol(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1(const unsigned char *data, size_t len, unsigned char out[20])
{
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    uint64_t bits = (uint64_t)len * 8;
    unsigned char block[64];
    int i;

    for (; len >= 64; data += 64, len -= 64)
        sha1_block(h, data);
    memset(block, 0, sizeof block);
    memcpy(block, data, len);
    block[len] = 0x80;
    if (len >= 56) {
        sha1_block(h, block);
        memset(block, 0, sizeof block);
    }
    for (i = 0; i < 8; i++)
        block[63 - i] = (unsigned char)(bits >> (8 * i));
    sha1_block(h, block);
    for (i = 0; i < 20; i++)
        out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/* out gets 4 * ceil(len / 3) characters and a NUL. */
static void base64(const unsigned char *in, size_t len, char *out)
{
    size_t i;

    for (i = 0; i + 2 < len; i += 3) {
        *out++ = B64[in[i] >> 2];
        *out++ = B64[(in[i] & 3) << 4 | in[i + 1] >> 4];
        *out++ = B64[(in[i + 1] & 15) << 2 | in[i + 2] >> 6];
        *out++ = B64[in[i + 2] & 63];
    }
    if (i < len) {
        *out++ = B64[in[i] >> 2];
        if (i + 1 < len) {
            *out++ = B64[(in[i] & 3) << 4 | in[i + 1] >> 4];
            *out++ = B64[(in[i + 1] & 15) << 2];
        } else {
            *out++ = B64[(in[i] & 3) << 4];
            *out++ = '=';
        }
        *out++ = '=';
    }
    *out = '\0';
}

/* Sec-WebSocket-Key: the base64 of 16 bytes is 22 characters and "==",
 * the last character carrying only 2 bits (so one of A, Q, g, w). */
static int valid_key(const char *key, size_t len)
{
    size_t i;

    if (len != 24 || strcmp(key + 22, "==") != 0 || !strchr("AQgw", key[21]))
        return 0;
    for (i = 0; i < 22; i++)
        if (key[i] == '\0' || !strchr(B64, key[i]))
            return 0;
    return 1;
}

/* Strict UTF-8: no overlong forms, no surrogates, nothing above U+10FFFF. */
static int utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0, j, k;
    uint32_t cp, min;

    while (i < n) {
        if (s[i] < 0x80) {
            i++;
            continue;
        } else if ((s[i] & 0xE0) == 0xC0) {
            k = 1, cp = s[i] & 0x1F, min = 0x80;
        } else if ((s[i] & 0xF0) == 0xE0) {
            k = 2, cp = s[i] & 0x0F, min = 0x800;
        } else if ((s[i] & 0xF8) == 0xF0) {
            k = 3, cp = s[i] & 0x07, min = 0x10000;
        } else {
            return 0;
        }
        if (n - i <= k)
            return 0;
        for (j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += k + 1;
    }
    return 1;
}

/* ---- the HTTP side: the opening handshake, on the library's thread ---- */

static void reply(Response *resp, int status, const char *body)
{
    Response_SetStatus(resp, status);
    Response_AddHeader(resp, "Content-Type", "text/plain");
    Response_Send(resp, body, strlen(body));
}

/* The library's counters: upgraded connections are not its own any more
 * (not in active_connections); websockets counts the ones open here. */
static void stats(Response *resp)
{
    ConnectionStats s;
    unsigned long open;
    char body[160];

    Connection_GetStats(&conn, &s);
    pthread_mutex_lock(&count_lock);
    open = open_sockets;
    pthread_mutex_unlock(&count_lock);
    snprintf(body, sizeof body, "active_connections %llu\nupgraded %llu\nwebsockets %lu\n",
             (unsigned long long)s.active_connections, (unsigned long long)s.upgraded, open);
    reply(resp, 200, body);
}

/* Called once per accepted upgrade, on the library's thread. */
static void on_upgrade(void *user, int fd, const uint8_t *data, size_t len,
                       ConnectionCloseReason reason)
{
    void *msg[2];

    (void)user;
    if (fd < 0) { /* the client left before the 101 was out; fd is closed */
        pthread_mutex_lock(&count_lock);
        open_sockets--;
        pthread_mutex_unlock(&count_lock);
        (void)reason;
        return;
    }
    /* A copy of the early bytes and the descriptor, for the thread. */
    msg[0] = malloc(sizeof fd + len + 1);
    if (msg[0] != NULL) {
        memcpy(msg[0], &fd, sizeof fd);
        if (len > 0)
            memcpy((char *)msg[0] + sizeof fd, data, len);
    }
    msg[1] = (void *)(uintptr_t)len;
    /* The pipe is non-blocking: a thread too far behind loses the client
     * rather than stalling the HTTP side (a 16-byte write is atomic). */
    if (msg[0] == NULL || write(pipe_w, msg, sizeof msg) != (ssize_t)sizeof msg) {
        free(msg[0]);
        close(fd);
        pthread_mutex_lock(&count_lock);
        open_sockets--;
        pthread_mutex_unlock(&count_lock);
    }
}

static void on_request(const Request *req, Response *resp, void *user)
{
    const char *method = Request_Method(req, NULL);
    const char *upgrade = Request_Header(req, "Upgrade", NULL);
    const char *version = Request_Header(req, "Sec-WebSocket-Version", NULL);
    const char *key;
    size_t key_len;
    unsigned char text[64], digest[20];
    char accept[29];
    int rc, full;

    (void)user;
    if (upgrade == NULL) {
        if (strcmp(method, "GET") != 0)
            reply(resp, 404, "Not Found\n");
        else if (strcmp(Request_Path(req, NULL), "/") == 0)
            reply(resp, 200, "WebSocket echo server: connect with ws://\n");
        else if (strcmp(Request_Path(req, NULL), "/stats") == 0)
            stats(resp);
        else
            reply(resp, 404, "Not Found\n");
        return;
    }
    if (strcmp(method, "GET") != 0) {
        reply(resp, 400, "a WebSocket handshake is a GET\n");
        return;
    }
    if (version == NULL || strcmp(version, "13") != 0) {
        Response_AddHeader(resp, "Sec-WebSocket-Version", "13");
        reply(resp, 426, "Sec-WebSocket-Version 13 is required\n");
        return;
    }
    key = Request_Header(req, "Sec-WebSocket-Key", &key_len);
    if (key == NULL || !valid_key(key, key_len)) {
        reply(resp, 400, "Sec-WebSocket-Key must be the base64 of 16 bytes\n");
        return;
    }
    pthread_mutex_lock(&count_lock);
    full = open_sockets >= max_sockets;
    if (!full)
        open_sockets++;
    pthread_mutex_unlock(&count_lock);
    if (full) {
        reply(resp, 503, "too many WebSocket connections\n");
        return;
    }
    memcpy(text, key, 24);
    memcpy(text + 24, GUID, 36);
    sha1(text, 60, digest);
    base64(digest, 20, accept);
    Response_AddHeader(resp, "Sec-WebSocket-Accept", accept);
    rc = Response_Upgrade(resp, "websocket", on_upgrade, NULL);
    if (rc != CONNECTION_OK) { /* e.g. no "Connection: upgrade", or a body */
        pthread_mutex_lock(&count_lock);
        open_sockets--;
        pthread_mutex_unlock(&count_lock);
        reply(resp, 400, Connection_StrError(rc));
    }
}

/* ---- the WebSocket side: its own thread and epoll loop ---- */

enum state { OPEN, CLOSE_SENT, DONE }; /* DONE: close once the output is out */

struct ws {
    int fd;
    enum state state;
    uint64_t deadline;             /* ms: idle, or our close unanswered */
    unsigned char *in;             /* received, not yet parsed */
    size_t in_len, in_cap;
    uint64_t skip;                 /* bytes of a refused frame to discard */
    unsigned char *msg;            /* the message being reassembled */
    size_t msg_len;
    int msg_op;                    /* its opcode (1 text, 2 binary), 0: none */
    unsigned char *out;            /* to send */
    size_t out_len, out_cap;
    uint32_t events;               /* what epoll watches for it now */
    struct ws *prev, *next;
};

static struct ws *all; /* every open one (the thread's only) */
static int ep = -1;

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void ws_free(struct ws *w)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, w->fd, NULL);
    close(w->fd);
    if (w->prev)
        w->prev->next = w->next;
    else
        all = w->next;
    if (w->next)
        w->next->prev = w->prev;
    free(w->in);
    free(w->msg);
    free(w->out);
    free(w);
    pthread_mutex_lock(&count_lock);
    open_sockets--;
    pthread_mutex_unlock(&count_lock);
}

/* Appends one unmasked frame (FIN set). Callers keep out_len bounded: at
 * most OUT_HIGH before a frame of at most MAX_MESSAGE is added. */
static int ws_frame(struct ws *w, int op, const unsigned char *data, size_t len)
{
    size_t need = w->out_len + 10 + len, hdr = 2, i;
    unsigned char *p;

    if (need > w->out_cap) {
        p = realloc(w->out, need);
        if (p == NULL)
            return -1;
        w->out = p;
        w->out_cap = need;
    }
    p = w->out + w->out_len;
    p[0] = (unsigned char)(0x80 | op);
    if (len < 126) {
        p[1] = (unsigned char)len;
    } else if (len < 65536) {
        p[1] = 126;
        p[2] = (unsigned char)(len >> 8);
        p[3] = (unsigned char)len;
        hdr = 4;
    } else {
        p[1] = 127;
        for (i = 0; i < 8; i++)
            p[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        hdr = 10;
    }
    if (len > 0)
        memcpy(p + hdr, data, len);
    w->out_len += hdr + len;
    return 0;
}

/* Sends a close frame with `code` and waits for the client's (1002
 * protocol error, 1007 invalid UTF-8, 1009 too big...). */
static void ws_fail(struct ws *w, int code)
{
    unsigned char c[2];

    c[0] = (unsigned char)(code >> 8);
    c[1] = (unsigned char)code;
    ws_frame(w, 8, c, 2);
    w->state = CLOSE_SENT;
    w->deadline = now_ms() + CLOSE_TIMEOUT_MS;
    w->msg_len = 0;
    w->msg_op = 0;
}

static int valid_close_code(unsigned code)
{
    return (code >= 1000 && code <= 1014 && code != 1004 && code != 1005 && code != 1006) ||
           (code >= 3000 && code <= 4999);
}

/* One complete, valid frame whose payload is unmasked in p. */
static void ws_handle(struct ws *w, int fin, int op, unsigned char *p, size_t len)
{
    unsigned char *m;

    if (op == 9) {
        ws_frame(w, 10, p, len);
    } else if (op == 8) {
        if (len == 1 || (len >= 2 && !valid_close_code((unsigned)p[0] << 8 | p[1]))) {
            ws_fail(w, 1002);
        } else if (len > 2 && !utf8_valid(p + 2, len - 2)) {
            ws_fail(w, 1007);
        } else {
            ws_frame(w, 8, p, len >= 2 ? 2 : 0); /* the same code back */
        }
        w->state = DONE; /* the client sent its close: nothing more to wait for */
        w->deadline = now_ms() + CLOSE_TIMEOUT_MS;
    } else if (op != 10) { /* text, binary or continuation */
        if (op != 0)
            w->msg_op = op;
        if (len > 0) {
            m = realloc(w->msg, w->msg_len + len);
            if (m == NULL) {
                ws_fail(w, 1011);
                return;
            }
            w->msg = m;
            memcpy(w->msg + w->msg_len, p, len);
            w->msg_len += len;
        }
        if (!fin)
            return;
        if (w->msg_op == 1 && !utf8_valid(w->msg, w->msg_len)) {
            ws_fail(w, 1007);
            return;
        }
        ws_frame(w, w->msg_op, w->msg, w->msg_len);
        w->msg_len = 0;
        w->msg_op = 0;
    }
}

/* Parses and handles every complete frame in the input. */
static void ws_parse(struct ws *w)
{
    size_t pos = 0, avail, hdr, i;
    uint64_t len, total;
    unsigned char *p, *grown;
    int fin, op, masked;

    while (w->state != DONE) {
        if (w->skip > 0) {
            avail = w->in_len - pos;
            i = w->skip < avail ? (size_t)w->skip : avail;
            pos += i;
            w->skip -= i;
            if (w->skip > 0)
                break;
            continue;
        }
        if (w->out_len >= OUT_HIGH)
            break; /* the client is not reading: wait for it */
        p = w->in + pos;
        avail = w->in_len - pos;
        if (avail < 2)
            break;
        fin = p[0] & 0x80;
        op = p[0] & 0x0F;
        masked = p[1] & 0x80;
        len = p[1] & 0x7F;
        hdr = 2;
        if (len == 126) {
            if (avail < 4)
                break;
            len = (uint64_t)p[2] << 8 | p[3];
            hdr = 4;
        } else if (len == 127) {
            if (avail < 10)
                break;
            for (len = 0, i = 2; i < 10; i++)
                len = len << 8 | p[i];
            hdr = 10;
            if (len >> 63) { /* the most significant bit must be 0 */
                ws_fail(w, 1002);
                w->skip = UINT64_MAX; /* no framing left to trust */
                continue;
            }
        }
        total = hdr + (masked ? 4 : 0) + len;
        if (w->state == CLOSE_SENT) { /* only the client's close matters now */
            if (op == 8) {
                w->state = DONE;
                break;
            }
            w->skip = total;
            continue;
        }
        if ((p[0] & 0x70) != 0 || !masked || (op > 2 && op < 8) || op > 10 ||
            (op >= 8 && (!fin || len > 125)) || (op == 0 && w->msg_op == 0) ||
            ((op == 1 || op == 2) && w->msg_op != 0)) {
            ws_fail(w, 1002);
            w->skip = total;
            continue;
        }
        if (op < 8 && len > MAX_MESSAGE - w->msg_len) {
            ws_fail(w, 1009);
            w->skip = total;
            continue;
        }
        if (avail < total) {
            if (total > w->in_cap) { /* at most 14 + MAX_MESSAGE */
                grown = realloc(w->in, (size_t)total);
                if (grown == NULL) {
                    ws_fail(w, 1011);
                    w->skip = total;
                    continue;
                }
                w->in = grown;
                w->in_cap = (size_t)total;
                p = w->in + pos;
            }
            break;
        }
        for (i = 0; i < len; i++)
            p[hdr + 4 + i] ^= p[hdr + i % 4];
        ws_handle(w, fin != 0, op, p + hdr + 4, (size_t)len);
        pos += (size_t)total;
    }
    if (pos > 0) {
        memmove(w->in, w->in + pos, w->in_len - pos);
        w->in_len -= pos;
    }
}

/* Sends what it can. Returns -1 when the connection is to be freed. */
static int ws_flush(struct ws *w)
{
    ssize_t n;

    while (w->out_len > 0) {
        n = send(w->fd, w->out, w->out_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                return 0;
            return -1; /* EPIPE, ECONNRESET, ...: the client is gone */
        }
        memmove(w->out, w->out + n, w->out_len - (size_t)n);
        w->out_len -= (size_t)n;
    }
    return w->state == DONE ? -1 : 0; /* both closes exchanged: done */
}

/* Watches for what the connection needs next. */
static void ws_watch(struct ws *w)
{
    struct epoll_event ev;
    uint32_t want = 0;

    if (w->state != DONE && w->out_len < OUT_HIGH && w->in_len < w->in_cap)
        want |= EPOLLIN;
    if (w->out_len > 0)
        want |= EPOLLOUT;
    if (want == w->events)
        return;
    memset(&ev, 0, sizeof ev);
    ev.events = want;
    ev.data.ptr = w;
    epoll_ctl(ep, EPOLL_CTL_MOD, w->fd, &ev);
    w->events = want;
}

/* Reads, parses, answers; frees the connection when it ends. */
static void ws_run(struct ws *w, int readable)
{
    ssize_t n;

    if (readable && w->in_len < w->in_cap) {
        n = recv(w->fd, w->in + w->in_len, w->in_cap - w->in_len, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
            ws_free(w); /* EOF or reset, perhaps in the middle of a frame */
            return;
        }
        if (n > 0) {
            w->in_len += (size_t)n;
            if (w->state == OPEN)
                w->deadline = now_ms() + idle_timeout_ms;
        }
    }
    ws_parse(w);
    if (ws_flush(w) < 0) {
        ws_free(w);
        return;
    }
    ws_watch(w);
}

/* A connection handed over by on_upgrade(): fd, then the early bytes. */
static void ws_add(unsigned char *handed, size_t len)
{
    struct ws *w = calloc(1, sizeof *w);
    struct epoll_event ev;
    int fd;

    memcpy(&fd, handed, sizeof fd);
    if (w != NULL) {
        w->in_cap = len > IN_CHUNK ? len : IN_CHUNK;
        w->in = malloc(w->in_cap);
    }
    if (w == NULL || w->in == NULL) {
        if (w != NULL)
            free(w);
        close(fd);
        pthread_mutex_lock(&count_lock);
        open_sockets--;
        pthread_mutex_unlock(&count_lock);
        return;
    }
    w->fd = fd;
    memcpy(w->in, handed + sizeof fd, len);
    w->in_len = len;
    w->deadline = now_ms() + idle_timeout_ms;
    w->events = EPOLLIN;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = w;
    w->next = all;
    if (all)
        all->prev = w;
    all = w;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0) {
        ws_free(w);
        return;
    }
    ws_run(w, 0); /* the early bytes may hold whole frames */
}

static void *ws_thread(void *arg)
{
    int pipe_r = *(int *)arg, i, n, open_pipe = 1;
    struct epoll_event ev, events[64];
    void *msg[2];
    struct ws *w, *next;
    uint64_t now;

    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    ev.data.ptr = NULL; /* the pipe */
    epoll_ctl(ep, EPOLL_CTL_ADD, pipe_r, &ev);
    while (open_pipe) {
        n = epoll_wait(ep, events, 64, 250);
        if (n < 0 && errno != EINTR)
            break;
        for (i = 0; i < n; i++) {
            w = events[i].data.ptr;
            if (w != NULL) {
                if (events[i].events & (EPOLLERR | EPOLLHUP))
                    ws_free(w);
                else
                    ws_run(w, (events[i].events & EPOLLIN) != 0);
                /* A freed ws is not named again in this batch: events are
                 * per descriptor, each at most once per epoll_wait. */
                continue;
            }
            for (;;) { /* the pipe: new connections, or EOF to stop */
                ssize_t r = read(pipe_r, msg, sizeof msg);
                if (r == (ssize_t)sizeof msg) {
                    ws_add(msg[0], (size_t)(uintptr_t)msg[1]);
                    free(msg[0]);
                } else {
                    if (r == 0)
                        open_pipe = 0;
                    break;
                }
            }
        }
        now = now_ms();
        for (w = all; w != NULL; w = next) {
            next = w->next;
            if (now >= w->deadline)
                ws_free(w); /* silent, or not answering our close */
        }
    }
    while (all != NULL)
        ws_free(all);
    close(pipe_r);
    return NULL;
}

/* ---- main: as in server.c ---- */

static void on_signal(int sig)
{
    int saved_errno = errno;

    (void)sig;
    Connection_Stop(&conn); /* async-signal-safe */
    errno = saved_errno;
}

static const char usage[] =
    "usage: %s [--host ADDR] [--port N] [--idle-timeout-ms N] [--max-websockets N]\n"
    "defaults: 127.0.0.1, 8080 (0: any free port), 60000 ms, 1000\n";

static const struct option options[] = {
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"idle-timeout-ms", required_argument, NULL, 'i'},
    {"max-websockets", required_argument, NULL, 'm'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static unsigned long number(const char *s, unsigned long max)
{
    char *end;
    unsigned long long n = strtoull(s, &end, 10);

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
    pthread_t thread;
    int opt, rc, fds[2];

    ConnectionConfig_Default(&cfg);
    cfg.host = "127.0.0.1";
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'H': cfg.host = optarg; break;
        case 'p': cfg.port = (uint16_t)number(optarg, UINT16_MAX); break;
        case 'i': idle_timeout_ms = number(optarg, 86400000UL); break;
        case 'm': max_sockets = number(optarg, 1000000UL); break;
        case 'h': printf(usage, argv[0]); return 0;
        default: fprintf(stderr, usage, argv[0]); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, usage, argv[0]);
        return 2;
    }

    rc = Connection_InitWith(&conn, &cfg);
    if (rc != CONNECTION_OK) {
        fprintf(stderr, "cannot listen on %s:%u: %s\n", cfg.host, (unsigned)cfg.port,
                Connection_StrError(rc));
        return 1;
    }
    Connection_SetHandler(&conn, on_request, NULL);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0 || pipe(fds) < 0) {
        perror("epoll_create1/pipe");
        return 1;
    }
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK);
    fcntl(fds[1], F_SETFL, fcntl(fds[1], F_GETFL) | O_NONBLOCK);
    pipe_w = fds[1];

    /* The thread inherits a mask with SIGINT/SIGTERM blocked: they go to
     * the main thread, whose handler stops the library. */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sa.sa_mask, NULL);
    if (pthread_create(&thread, NULL, ws_thread, &fds[0]) != 0) {
        fprintf(stderr, "pthread_create failed\n");
        return 1;
    }
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    pthread_sigmask(SIG_UNBLOCK, &sa.sa_mask, NULL);

    printf("listening on %s:%d\n", cfg.host, Connection_Port(&conn));
    fflush(stdout);

    while ((rc = Connection_Process(&conn)) == CONNECTION_OK)
        ;

    pthread_sigmask(SIG_BLOCK, &sa.sa_mask, NULL); /* conn is about to go away */
    Connection_Destroy(&conn);
    close(pipe_w); /* EOF: the thread closes its connections and ends */
    pthread_join(thread, NULL);
    close(ep);
    if (rc != CONNECTION_STOPPED) {
        fprintf(stderr, "Connection_Process: %s\n", Connection_StrError(rc));
        return 1;
    }
    return 0;
}
