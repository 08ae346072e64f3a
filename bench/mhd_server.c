/*
 * mhd_server.c - the libmicrohttpd contender for bench/run.sh.
 *
 * Same routes and bytes as c-examples/server.c:
 *   GET /     200 "Hello, World!"      Content-Type: text/plain
 *   GET /big  200, 1 MiB of the same repeating 64-byte pattern,
 *             Content-Type: application/octet-stream
 *   other paths 404, other methods 405.
 *
 * One internal epoll thread (MHD_USE_EPOLL_INTERNAL_THREAD, i.e.
 * MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL) plus MHD_USE_TURBO, its
 * documented fast mode (pass --no-turbo to leave it off).  The responses are
 * built once and queued for every request (MHD reference-counts them).
 *
 *   mhd_server [--host 127.0.0.1] [--port 8082] [--max-connections N] [--no-turbo]
 *   mhd_server --version
 *
 * Prints "listening on HOST:PORT" when ready; SIGINT/SIGTERM stop it.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#if MHD_VERSION < 0x00097002
typedef int MHD_RESULT;
#else
typedef enum MHD_Result MHD_RESULT;
#endif

#define BIG_SIZE (1024u * 1024u)

static const char HELLO[] = "Hello, World!";
static const char PATTERN[] =
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz+\n";
#define PATTERN_LEN (sizeof PATTERN - 1)

static char big_body[BIG_SIZE];
static struct MHD_Response *resp_hello, *resp_big, *resp_404, *resp_405;

static MHD_RESULT on_request(void *cls, struct MHD_Connection *connection,
                             const char *url, const char *method,
                             const char *version, const char *upload_data,
                             size_t *upload_data_size, void **req_cls)
{
    (void)cls;
    (void)version;
    (void)upload_data;
    static int first_call_marker;

    /* First call: headers only.  Queueing a response now would make MHD
     * treat the request as not fully received and close the connection
     * afterwards, so answer on the next call (the usual MHD pattern). */
    if (*req_cls == NULL) {
        *req_cls = &first_call_marker;
        return MHD_YES;
    }
    if (*upload_data_size != 0) { /* a body we do not want: swallow it */
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(url, "/") == 0 || strcmp(url, "/big") == 0) {
        if (strcmp(method, "GET") != 0)
            return MHD_queue_response(connection, 405, resp_405);
        return MHD_queue_response(connection, MHD_HTTP_OK,
                                  url[1] == '\0' ? resp_hello : resp_big);
    }
    return MHD_queue_response(connection, MHD_HTTP_NOT_FOUND, resp_404);
}

static struct MHD_Response *make(const void *body, size_t len, const char *type)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (r == NULL || MHD_add_response_header(r, "Content-Type", type) != MHD_YES) {
        fprintf(stderr, "mhd_server: cannot build a response\n");
        exit(1);
    }
    return r;
}

int main(int argc, char **argv)
{
    const char *host = "127.0.0.1";
    unsigned port = 8082, max_conns = 20000;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_USE_ERROR_LOG;
    struct sockaddr_in addr;
    struct MHD_Daemon *d;
    sigset_t set;
    int sig;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--host") == 0 && i + 1 < argc)
            host = argv[++i];
        else if (strcmp(argv[i], "--port") == 0 && i + 1 < argc)
            port = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--max-connections") == 0 && i + 1 < argc)
            max_conns = (unsigned)atoi(argv[++i]);
        else if (strcmp(argv[i], "--version") == 0) {
            printf("libmicrohttpd %s\n", MHD_get_version());
            return 0;
        } else if (strcmp(argv[i], "--no-turbo") == 0)
            flags &= ~(unsigned)MHD_USE_TURBO;
        else {
            fprintf(stderr,
                    "usage: %s [--host H] [--port N] [--max-connections N] [--no-turbo]\n"
                    "       %s --version\n",
                    argv[0], argv[0]);
            return 2;
        }
    }

    for (size_t i = 0; i < BIG_SIZE; i++)
        big_body[i] = PATTERN[i % PATTERN_LEN];
    resp_hello = make(HELLO, sizeof HELLO - 1, "text/plain");
    resp_big = make(big_body, BIG_SIZE, "application/octet-stream");
    resp_404 = make("Not Found", 9, "text/plain");
    resp_405 = make("Method Not Allowed", 18, "text/plain");

    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, host, &addr.sin_addr) != 1) {
        fprintf(stderr, "%s: bad IPv4 address '%s'\n", argv[0], host);
        return 2;
    }

    /* Block the stop signals before MHD starts its thread, so only
     * sigwait() below sees them. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                         MHD_OPTION_CONNECTION_LIMIT, max_conns,
                         MHD_OPTION_CONNECTION_TIMEOUT, 0u,
                         MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)SOMAXCONN,
                         MHD_OPTION_END);
    if (d == NULL) {
        fprintf(stderr, "%s: MHD_start_daemon failed on %s:%u\n", argv[0], host, port);
        return 1;
    }
    printf("listening on %s:%u\n", host, port);
    fflush(stdout);

    sigwait(&set, &sig);
    MHD_stop_daemon(d);
    MHD_destroy_response(resp_hello);
    MHD_destroy_response(resp_big);
    MHD_destroy_response(resp_404);
    MHD_destroy_response(resp_405);
    return 0;
}
