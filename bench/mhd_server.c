/*
 * mhd_server.c - the libmicrohttpd contender for bench/run.sh.
 *
 * Same routes and bytes as c-examples/server.c:
 *   GET /     200 "Hello, World!"      Content-Type: text/plain
 *   GET /big  200, 1 MiB of the same repeating 64-byte pattern,
 *             Content-Type: application/octet-stream
 *   GET /work 200 "Hello, World!", answered by a worker thread (see below;
 *             only with --workers, else 404)
 *   other paths 404, other methods 405.
 *
 * Without --workers: one internal epoll thread (MHD_USE_EPOLL_INTERNAL_THREAD,
 * i.e. MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL) plus MHD_USE_TURBO,
 * its documented fast mode (pass --no-turbo to leave it off).  The responses
 * are built once and queued for every request (MHD reference-counts them).
 *
 * With --workers N, GET /work is the deferred-answer contender (bench
 * scenario worker_post), built like c-examples/workers.c's pool: the
 * handler suspends the connection (MHD_suspend_connection) and adds a job
 * to the turn's batch; the loop is the main thread calling MHD_run_wait
 * (MHD_USE_EPOLL, external polling: the same epoll loop MHD's internal
 * thread runs, but the application sees where a turn ends), and after each
 * MHD_run_wait the batch goes to the pool's queue under one lock and up to
 * that many idle workers are signalled.  A worker, having "computed" the
 * answer, records the job done and takes the next one under one lock,
 * calls MHD_resume_connection, and sleeps only when the queue is empty; MHD
 * then calls the handler again, which queues the response.  In external
 * mode MHD leaves the loop's wake-up after a resume to the application (it
 * drops its own eventfd, MHD_USE_ITC): a worker writes an eventfd that sits
 * in MHD's epoll set (edge-triggered, data.ptr NULL, which MHD's loop
 * skips), at most once per turn, as Connection_Post does.  That is
 * libmicrohttpd's documented way to answer from another thread
 * (MHD_ALLOW_SUSPEND_RESUME).
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
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

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
/* Under queue_lock: */
static struct job *queue_head, *queue_tail;
static unsigned long queue_idle; /* workers waiting on queue_cond */
static int queue_closed;

/* The loop thread only: the jobs of the current turn, handed to the queue
 * by flush() after MHD_run_wait returns. */
static struct job *batch_head, *batch_tail;
static unsigned long batch_count;

static volatile sig_atomic_t stop_requested;

/* The loop's wake-up after a resume (see the top): written by a worker
 * only when `loop_woken` was 0; the loop sets it back to 0 after each
 * turn (MHD handles the resumes at the start of the next one). */
static int wake_fd = -1;
static atomic_int loop_woken;

static void wake_loop(void)
{
    static const uint64_t one = 1;

    if (atomic_exchange(&loop_woken, 1) == 0 && write(wake_fd, &one, sizeof one) < 0) {
        /* EAGAIN: the counter is full, so the eventfd stays readable. */
    }
}

/* A worker's one visit to the queue (as workers.c's queue_next): records
 * `finished` (if not NULL) as done, then takes the next job; waits for one
 * only when `finished` is NULL.  NULL when the queue is empty (finished
 * given) or closed. */
static struct job *queue_next(struct job *finished)
{
    struct job *j = NULL;

    pthread_mutex_lock(&queue_lock);
    if (finished != NULL)
        finished->done = 1; /* the "computation": the answer is resp_hello */
    while (finished == NULL && queue_head == NULL && !queue_closed) {
        queue_idle++;
        pthread_cond_wait(&queue_cond, &queue_lock);
        queue_idle--;
    }
    if (queue_head != NULL && !queue_closed) {
        j = queue_head;
        queue_head = j->next;
        if (queue_head == NULL)
            queue_tail = NULL;
    }
    pthread_mutex_unlock(&queue_lock);
    return j;
}

static void *worker_main(void *arg)
{
    struct job *j, *next;

    (void)arg;
    for (j = queue_next(NULL); j != NULL; j = next) {
        next = queue_next(j);
        MHD_resume_connection(j->connection);
        wake_loop();
        if (next == NULL)
            next = queue_next(NULL); /* waits */
    }
    return NULL;
}

/* The loop thread, after each MHD_run_wait: the turn's jobs go to the
 * queue, and up to that many idle workers are woken (after the unlock). */
static void flush(void)
{
    unsigned long wake;

    if (batch_head == NULL)
        return;
    pthread_mutex_lock(&queue_lock);
    if (queue_tail != NULL)
        queue_tail->next = batch_head;
    else
        queue_head = batch_head;
    queue_tail = batch_tail;
    wake = batch_count < queue_idle ? batch_count : queue_idle;
    pthread_mutex_unlock(&queue_lock);
    batch_head = batch_tail = NULL;
    batch_count = 0;
    while (wake-- > 0)
        pthread_cond_signal(&queue_cond);
}

static void enqueue(struct job *j)
{
    j->next = NULL;
    if (batch_tail != NULL)
        batch_tail->next = j;
    else
        batch_head = j;
    batch_tail = j;
    batch_count++;
}

static void on_stop_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
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
    if (cls != NULL && strcmp(url, "/work") == 0 && strcmp(method, "GET") == 0) {
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
    unsigned port = 8082, max_conns = 20000, nworkers = 0;
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

    if (nworkers > 0) /* the application's own loop thread (see the top) */
        flags = MHD_USE_EPOLL | MHD_USE_TURBO | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
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

    /* Block the stop signals before MHD or the workers start their
     * threads, so only this thread sees them. */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    for (unsigned i = 0; i < nworkers; i++)
        if (pthread_create(&workers[i], NULL, worker_main, NULL) != 0) {
            fprintf(stderr, "%s: cannot start a worker thread\n", argv[0]);
            return 1;
        }

    /* A non-NULL cls turns /work on (with --workers only). */
    d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_request,
                         nworkers > 0 ? (void *)&queue_cond : NULL,
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

    if (nworkers == 0) {
        sigwait(&set, &sig);
        MHD_stop_daemon(d);
    } else {
        struct sigaction sa;
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
        struct epoll_event ev;

        wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        memset(&ev, 0, sizeof ev);
        ev.events = EPOLLIN | EPOLLET;
        ev.data.ptr = NULL;
        if (info == NULL || wake_fd < 0 || epoll_ctl(info->epoll_fd, EPOLL_CTL_ADD, wake_fd, &ev) != 0) {
            perror("mhd_server: the loop's eventfd");
            return 1;
        }
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_stop_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        pthread_sigmask(SIG_UNBLOCK, &set, NULL);
        /* One turn per MHD_run_wait (a signal interrupts its epoll_wait;
         * one that comes just before it is seen within 1 s). */
        while (!stop_requested) {
            if (MHD_run_wait(d, 1000) != MHD_YES) {
                fprintf(stderr, "%s: MHD_run_wait failed\n", argv[0]);
                break;
            }
            atomic_store(&loop_woken, 0);
            flush(); /* the turn is over: wake the pool once */
        }
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        /* The workers resume the connections in hand and exit; queued
         * jobs' connections stay suspended and MHD_stop_daemon closes
         * them (on_completed frees the jobs). */
        pthread_mutex_lock(&queue_lock);
        queue_closed = 1;
        pthread_cond_broadcast(&queue_cond);
        pthread_mutex_unlock(&queue_lock);
        for (unsigned i = 0; i < nworkers; i++)
            pthread_join(workers[i], NULL);
        MHD_stop_daemon(d);
    }
    MHD_destroy_response(resp_hello);
    MHD_destroy_response(resp_big);
    MHD_destroy_response(resp_404);
    MHD_destroy_response(resp_405);
    return 0;
}
