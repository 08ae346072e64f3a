/* Second, independent oracle for request parsing: llhttp (the parser of
 * Node.js), built from the C sources Debian's node-llhttp package ships
 * (/usr/share/llhttp, llhttp.h in /usr/share/include/llhttp), in its
 * default strict mode: no lenient flag is set.
 *
 * Reads records from stdin, each
 *
 *     <name> <length>\n<length bytes a client sent>
 *
 * and feeds each record's bytes, at once, to a fresh request parser.
 * Prints one line per record:
 *
 *     <name> ok <n>                    n complete requests, nothing left over
 *     <name> partial <n>               n complete requests, then an unfinished one
 *     <name> error <n> <ERRNO> <reason>  n complete requests, then a parse error
 *
 * An upgrade (HPE_PAUSED_UPGRADE) counts as "ok" with the requests so far:
 * what follows is no longer HTTP.
 *
 * Built and run by tests/protocol/conformance.rs (llhttp_agrees_on_accept_reject).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llhttp.h"

static int complete;
static int in_message;

static int on_begin(llhttp_t *p) {
    (void)p;
    in_message = 1;
    return 0;
}

static int on_complete(llhttp_t *p) {
    (void)p;
    in_message = 0;
    complete++;
    return 0;
}

static void check(const char *name, const char *data, size_t len) {
    llhttp_settings_t settings;
    llhttp_t parser;
    llhttp_settings_init(&settings);
    settings.on_message_begin = on_begin;
    settings.on_message_complete = on_complete;
    llhttp_init(&parser, HTTP_REQUEST, &settings);
    complete = 0;
    in_message = 0;
    llhttp_errno_t err = llhttp_execute(&parser, data, len);
    if (err == HPE_OK || err == HPE_PAUSED_UPGRADE) {
        printf("%s %s %d\n", name, in_message && err == HPE_OK ? "partial" : "ok", complete);
        return;
    }
    const char *reason = llhttp_get_error_reason(&parser);
    char clean[200];
    size_t i = 0;
    for (; reason && reason[i] && i + 1 < sizeof clean; i++) {
        char c = reason[i];
        clean[i] = (c == '\n' || c == '\r') ? ' ' : c;
    }
    clean[i] = 0;
    printf("%s error %d %s %s\n", name, complete, llhttp_errno_name(err), clean);
}

int main(void) {
    char header[512];
    while (fgets(header, sizeof header, stdin)) {
        char name[256];
        size_t len;
        if (sscanf(header, "%255s %zu", name, &len) != 2) {
            fprintf(stderr, "bad record header: %s", header);
            return 2;
        }
        char *data = malloc(len ? len : 1);
        if (!data || fread(data, 1, len, stdin) != len) {
            fprintf(stderr, "truncated record %s\n", name);
            return 2;
        }
        check(name, data, len);
        free(data);
    }
    printf("llhttp %d.%d.%d\n", LLHTTP_VERSION_MAJOR, LLHTTP_VERSION_MINOR,
           LLHTTP_VERSION_PATCH);
    return 0;
}
