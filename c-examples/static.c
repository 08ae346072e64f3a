/*
 * static.c - a static file server on top of connection-core.
 *
 * Serves the files under --root: GET and HEAD, index.html for a directory,
 * Content-Type from the file's extension, and Range / If-Range /
 * If-None-Match / If-Modified-Since answered by the library
 * (Response_SendFileRanged), which sends the file with sendfile(2).
 *
 * No path escapes the root.  The request path is percent-decoded here
 * (a NUL, a backslash or a bad escape is refused), every ".." or "."
 * segment is refused, and what is left is resolved with realpath(3): the
 * result (symlinks followed) must be the root itself or lie under the root
 * followed by '/', or the answer is 404.  An absolute-form request target
 * (http://host/path) is served by its path like any other.
 *
 * ./static --root DIR [--host ADDR] [--port N]; ./static --help.
 * SIGINT or SIGTERM: in-flight responses finish, then the program exits 0.
 */
#define _XOPEN_SOURCE 700 /* realpath */

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "connection.h"

#define MAX_PATH 1024 /* longest request path served (decoded); longer: 414 */

static Connection conn;       /* file scope for the signal handler */
static char root[PATH_MAX];   /* the root, resolved by realpath */
static size_t root_len;

static void reply(Response *resp, int status, const char *body)
{
    Response_SetStatus(resp, status);
    Response_AddHeader(resp, "Content-Type", "text/plain");
    Response_Send(resp, body, strlen(body));
}

static const struct { const char *ext, *type; } types[] = {
    {"html", "text/html; charset=utf-8"}, {"htm", "text/html; charset=utf-8"},
    {"css", "text/css"}, {"js", "text/javascript"}, {"mjs", "text/javascript"},
    {"json", "application/json"}, {"txt", "text/plain; charset=utf-8"},
    {"xml", "application/xml"}, {"svg", "image/svg+xml"}, {"png", "image/png"},
    {"jpg", "image/jpeg"}, {"jpeg", "image/jpeg"}, {"gif", "image/gif"},
    {"webp", "image/webp"}, {"ico", "image/x-icon"}, {"pdf", "application/pdf"},
    {"wasm", "application/wasm"}, {"woff2", "font/woff2"}, {"mp4", "video/mp4"},
    {"gz", "application/gzip"}, {"zip", "application/zip"},
};

static const char *mime_type(const char *path)
{
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash != NULL ? slash : path, '.');
    size_t i;

    if (dot != NULL) {
        for (i = 0; i < sizeof types / sizeof types[0]; i++) {
            const char *a = dot + 1, *b = types[i].ext;

            while (*a != '\0' && *b != '\0' && (*a | 0x20) == *b) {
                a++;
                b++;
            }
            if (*a == '\0' && *b == '\0')
                return types[i].type;
        }
    }
    return "application/octet-stream";
}

static int hex(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 0x20);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Decodes %XX escapes of src into dst (cap bytes).  Returns the HTTP status
 * refusing it, or 0: 400 for a bad escape, a NUL or a backslash (decoded or
 * not), 414 for a path too long. */
static int percent_decode(const char *src, char *dst, size_t cap)
{
    size_t n = 0;

    for (; *src != '\0'; src++) {
        char c = *src;

        if (c == '%') {
            int hi = hex(src[1]), lo = hi < 0 ? -1 : hex(src[2]);

            if (hi < 0 || lo < 0)
                return 400;
            c = (char)(hi * 16 + lo);
            src += 2;
        }
        if (c == '\0' || c == '\\')
            return 400;
        if (n + 1 >= cap)
            return 414;
        dst[n++] = c;
    }
    dst[n] = '\0';
    return 0;
}

/* 0 if every segment of the decoded path is a name: no "." or "..". */
static int has_dot_segment(const char *path)
{
    const char *p = path;

    while (*p != '\0') {
        size_t len;

        p += strspn(p, "/");
        len = strcspn(p, "/");
        if ((len == 1 && p[0] == '.') || (len == 2 && p[0] == '.' && p[1] == '.'))
            return 1;
        p += len;
    }
    return 0;
}

/* Resolves root + "/" + rel (symlinks followed) into out; 0 if it exists and
 * is the root or under it, else the HTTP status to answer (404 or 403). */
static int resolve(const char *rel, char *out)
{
    char joined[PATH_MAX];

    if ((size_t)snprintf(joined, sizeof joined, "%s/%s", root, rel) >= sizeof joined)
        return 414;
    if (realpath(joined, out) == NULL)
        return errno == EACCES ? 403 : 404;
    if (strncmp(out, root, root_len) != 0 ||
        (out[root_len] != '\0' && out[root_len] != '/'))
        return 404; /* a symlink out of the root */
    return 0;
}

static void serve(const Request *req, Response *resp)
{
    const char *method = Request_Method(req, NULL);
    const char *path = Request_Path(req, NULL);
    char decoded[MAX_PATH + 1], file[PATH_MAX], index[PATH_MAX];
    struct stat st;
    int status, fd, rc;

    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        Response_AddHeader(resp, "Allow", "GET, HEAD");
        reply(resp, 405, "Method Not Allowed\n");
        return;
    }
    if (path[0] != '/') {
        reply(resp, 400, "Bad Request\n");
        return;
    }
    status = percent_decode(path, decoded, sizeof decoded);
    if (status == 0 && has_dot_segment(decoded))
        status = 403;
    if (status == 0)
        status = resolve(decoded + strspn(decoded, "/"), file);
    if (status != 0) {
        reply(resp, status, status == 403 ? "Forbidden\n" : status == 404 ? "Not Found\n"
                            : status == 414 ? "URI Too Long\n" : "Bad Request\n");
        return;
    }
    if (stat(file, &st) == 0 && S_ISDIR(st.st_mode)) {
        if (path[strlen(path) - 1] != '/') {
            char location[MAX_PATH + 2];

            snprintf(location, sizeof location, "%s/", path);
            Response_AddHeader(resp, "Location", location);
            reply(resp, 301, "Moved Permanently\n");
            return;
        }
        if ((size_t)snprintf(index, sizeof index, "%s/index.html",
                             file + root_len + (file[root_len] == '/')) >= sizeof index) {
            reply(resp, 414, "URI Too Long\n");
            return;
        }
        status = resolve(index, file);
        if (status != 0) {
            reply(resp, 403, "Forbidden\n"); /* a directory without an index */
            return;
        }
    }
    /* The file was resolved inside the root; O_NOFOLLOW refuses a symlink
     * put in its place since. */
    fd = open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        reply(resp, errno == ENOENT ? 404 : 403, errno == ENOENT ? "Not Found\n" : "Forbidden\n");
        return;
    }
    Response_AddHeader(resp, "Content-Type", mime_type(file));
    /* CONNECTION_FILE_CLOSE: fd is the library's now, whatever it returns. */
    rc = Response_SendFileRanged(resp, req, fd, CONNECTION_FILE_CLOSE);
    if (rc == CONNECTION_ERR_NOT_FILE)
        reply(resp, 403, "Forbidden\n");
    else if (rc != CONNECTION_OK && rc != CONNECTION_ERR_CLOSED)
        reply(resp, 500, "Internal Server Error\n");
}

/* The ConnectionHandler: runs inside Connection_Process() for each request. */
static void on_request(const Request *req, Response *resp, void *user)
{
    (void)user;
    serve(req, resp);
}

static void on_signal(int sig)
{
    int saved_errno = errno;

    (void)sig;
    Connection_Stop(&conn);
    errno = saved_errno;
}

static const char usage[] =
    "usage: %s --root DIR [--host ADDR] [--port N]\n"
    "defaults: 127.0.0.1, 8080 (0: any free port)\n";

static const struct option options[] = {
    {"root", required_argument, NULL, 'r'},
    {"host", required_argument, NULL, 'H'},
    {"port", required_argument, NULL, 'p'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int main(int argc, char **argv)
{
    ConnectionConfig cfg;
    struct sigaction sa;
    const char *root_arg = NULL;
    char *end;
    unsigned long port;
    int opt, rc;

    ConnectionConfig_Default(&cfg);
    cfg.host = "127.0.0.1";
    while ((opt = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        switch (opt) {
        case 'r': root_arg = optarg; break;
        case 'H': cfg.host = optarg; break;
        case 'p':
            port = strtoul(optarg, &end, 10);
            if (*optarg < '0' || *optarg > '9' || *end != '\0' || port > UINT16_MAX) {
                fprintf(stderr, "bad port '%s'\n", optarg);
                return 2;
            }
            cfg.port = (uint16_t)port;
            break;
        case 'h': printf(usage, argv[0]); return 0;
        default: fprintf(stderr, usage, argv[0]); return 2;
        }
    }
    if (root_arg == NULL || optind < argc) {
        fprintf(stderr, usage, argv[0]);
        return 2;
    }
    if (realpath(root_arg, root) == NULL) {
        fprintf(stderr, "--root %s: %s\n", root_arg, strerror(errno));
        return 2;
    }
    root_len = strlen(root);
    if (root_len == 1) /* "/": every path is under it; compare with "" + '/' */
        root_len = 0;

    rc = Connection_InitWith(&conn, &cfg);
    if (rc != CONNECTION_OK) {
        fprintf(stderr, "cannot listen on %s:%u: %s\n", cfg.host, (unsigned)cfg.port,
                Connection_StrError(rc));
        return 1;
    }
    Connection_SetHandler(&conn, on_request, NULL);

    /* SIGPIPE keeps its default action on purpose: the library never raises
     * it, not even for sendfile (see Response_SendFile). */
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGINT);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    printf("serving %s\nlistening on %s:%d\n", root, cfg.host, Connection_Port(&conn));
    fflush(stdout);

    while ((rc = Connection_Process(&conn)) == CONNECTION_OK)
        ;

    sigprocmask(SIG_BLOCK, &sa.sa_mask, NULL);
    Connection_Destroy(&conn);
    if (rc != CONNECTION_STOPPED) {
        fprintf(stderr, "Connection_Process: %s\n", Connection_StrError(rc));
        return 1;
    }
    return 0;
}
