/*
 * mhd_server.c - the libmicrohttpd contender for bench/run.sh.
 *
 * Same routes and bytes as c-examples/server.c:
 *   GET /     200 "Hello, World!"      Content-Type: text/plain
 *   GET /big  200, 1 MiB of the same repeating 64-byte pattern,
 *             Content-Type: application/octet-stream
 *   GET /work 200 "Hello, World!", answered by a worker thread (see below)
 *   other paths 404, other methods 405.
 *
 * GET /work is the deferred-answer contender (bench scenario worker_post):
 * the handler suspends the connection (MHD_suspend_connection), queues a
 * job for one of --workers N threads (default 2), and the worker, having
 * "computed" the answer, marks the job done and calls
 * MHD_resume_connection; MHD then calls the handler again, which queues
 * the response.  That is libmicrohttpd's documented way to answer from
 * another thread (MHD_ALLOW_SUSPEND_RESUME).
 *
 * One internal epoll thread (MHD_USE_EPOLL_INTERNAL_THREAD, i.e.
 * MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL) plus MHD_USE_TURBO, its
 * documented fast mode (pass --no-turbo to leave it off).  The responses are
 * built once and queued for every request (MHD reference-counts them).
 *
 *   mhd_server [--host 127.0.0.1] [--port 8082] [--max-connections N] [--no-turbo]
 *              [--workers N]
 *   mhd_server --version
 *
 * Prints "listening on HOST:PORT" when ready; SIGINT/SIGTERM stop it.
 */
#define _GNU_SOURCE

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
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

/* One /work request: allocated on its second handler call, freed by
 * on_completed.  `done` is written by a worker, read by the MHD thread
 * after MHD_resume_connection (the queue's mutex orders the two). */
struct job {
    struct MHD_Connection *connection;
    int done;
    struct job *next;
};

static pthread_mutex_t queue_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t queue_cond = PTHREAD_COND_INITIALIZER;
static struct job *queue_head, *queue_tail;
static int queue_closed;

static void *worker_main(void *arg)
{
    (void)arg;
    for (;;) {
        struct job *j;
        pthread_mutex_lock(&queue_lock);
        while (queue_head == NULL && !queue_closed)
            pthread_cond_wait(&queue_cond, &queue_lock);
        if (queue_head == NULL) {
            pthread_mutex_unlock(&queue_lock);
            return NULL;
        }
        j = queue_head;
        queue_head = j->next;
        if (queue_head == NULL)
            queue_tail = NULL;
        j->done = 1; /* the "computation": the answer is resp_hello */
        pthread_mutex_unlock(&queue_lock);
        MHD_resume_connection(j->connection);
    }
}

static void enqueue(struct job *j)
{
    pthread_mutex_lock(&queue_lock);
    j->next = NULL;
    if (queue_tail != NULL)
        queue_tail->next = j;
    else
        queue_head = j;
    queue_tail = j;
    pthread_mutex_unlock(&queue_lock);
    /* After the unlock, as in c-examples/workers.c: a worker woken here
     * may run at once (on this CPU too) and would otherwise block on the
     * mutex the MHD thread still holds. */
    pthread_cond_signal(&queue_cond);
}

/* The handler's first call for every request sets *req_cls to this
 * marker; /work replaces it with its job on the second call. */
static int first_call_marker;

static void on_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)connection;
    (void)toe;
    if (*req_cls != NULL && *req_cls != (void *)&first_call_marker)
        free(*req_cls);
    *req_cls = NULL;
}

static MHD_RESULT on_request(void *cls, struct MHD_Connection *connection,
                             const char *url, const char *method,
                             const char *version, const char *upload_data,
                             size_t *upload_data_size, void **req_cls)
{
    (void)cls;
    (void)version;
    (void)upload_data;

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
    if (strcmp(url, "/work") == 0 && strcmp(method, "GET") == 0) {
        struct job *j = *req_cls == (void *)&first_call_marker ? NULL : *req_cls;
        int done;
        if (j == NULL) {
            j = calloc(1, sizeof *j);
            if (j == NULL)
                return MHD_NO;
            j->connection = connection;
            *req_cls = j;
            MHD_suspend_connection(connection);
            enqueue(j);
            return MHD_YES;
        }
        pthread_mutex_lock(&queue_lock);
        done = j->done;
        pthread_mutex_unlock(&queue_lock);
        if (!done) /* not resumed by its worker yet: cannot happen */
            return MHD_NO;
        return MHD_queue_response(connection, MHD_HTTP_OK, resp_hello);
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
    unsigned port = 8082, max_conns = 20000, nworkers = 2;
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_TURBO | MHD_USE_ERROR_LOG |
                     MHD_ALLOW_SUSPEND_RESUME;
    pthread_t workers[64];
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
        else if (strcmp(argv[i], "--workers") == 0 && i + 1 < argc) {
            nworkers = (unsigned)atoi(argv[++i]);
            if (nworkers < 1 || nworkers > 64) {
                fprintf(stderr, "%s: --workers takes 1..64\n", argv[0]);
                return 2;
            }
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("libmicrohttpd %s\n", MHD_get_version());
            return 0;
        } else if (strcmp(argv[i], "--no-turbo") == 0)
            flags &= ~(unsigned)MHD_USE_TURBO;
        else {
            fprintf(stderr,
                    "usage: %s [--host H] [--port N] [--max-connections N] [--no-turbo] [--workers N]\n"
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

    for (unsigned i = 0; i < nworkers; i++)
        if (pthread_create(&workers[i], NULL, worker_main, NULL) != 0) {
            fprintf(stderr, "%s: cannot start a worker thread\n", argv[0]);
            return 1;
        }

    d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request, NULL,
                         MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
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
    pthread_mutex_lock(&queue_lock);
    queue_closed = 1;
    pthread_cond_broadcast(&queue_cond);
    pthread_mutex_unlock(&queue_lock);
    for (unsigned i = 0; i < nworkers; i++)
        pthread_join(workers[i], NULL);
    MHD_destroy_response(resp_hello);
    MHD_destroy_response(resp_big);
    MHD_destroy_response(resp_404);
    MHD_destroy_response(resp_405);
    return 0;
}
