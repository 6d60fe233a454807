/* mastercf.h: parser of Postfix's master.cf (services of one instance), pure so it can be fuzzed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Limits on untrusted input; an entry beyond them is reported and skipped. */
#define MASTERCF_LINE_MAX     (64 * 1024) /* bytes of one logical entry (with continuation lines) */
#define MASTERCF_FIELDS_MAX   1024        /* words of one entry (8 columns + arguments) */
#define MASTERCF_SERVICES_MAX 4096        /* services in one file */
#define MASTERCF_DIAGS_MAX    1000        /* diagnostics kept; the rest are counted in one last line */
#define MASTERCF_TEXT_MAX     (16 * 1024 * 1024) /* whole file; larger input is -EFBIG */
#define MASTERCF_WAKEUP_MAX   (365 * 24 * 3600)  /* seconds */
#define MASTERCF_MAXPROC_MAX  100000

enum mastercf_type { MASTERCF_INET, MASTERCF_UNIX, MASTERCF_UNIX_DGRAM, MASTERCF_FIFO, MASTERCF_PASS };

struct mastercf_override {
        char *name;
        char *value;
};

struct mastercf_service {
        char *name;      /* column 1 as written: "smtp", "2525", "127.0.0.1:10025", "[::1]:25", "pickup" */
        char *type_name; /* column 2 as written */
        enum mastercf_type type;
        char *column[7];               /* columns 1..7 exactly as written ("-" kept), for postconf -M/-F */
        bool private_, unpriv, chroot; /* "-" resolved: private y (n for inet), unpriv y, chroot n */
        int wakeup;                    /* 0 = none */
        bool wakeup_conditional;       /* "60?" */
        int maxproc;                   /* -1 = "-" (default_process_limit) */
        char *command;                 /* "smtpd" */
        struct strv args;              /* arguments after the command, -o pairs removed */
        struct mastercf_override *overrides; /* -o name=value / -o { name = value } in order */
        size_t n_overrides;
        char *host; /* inet: host part without the [] of an IPv6 address, NULL when column 1 names only a
                       port */
        char *port; /* inet: port or service name as written ("smtp", "2525") */
        unsigned line;
};

struct mastercf_diag {
        unsigned line;
        char *message;
};

struct mastercf {
        struct mastercf_service *services;
        size_t n_services;
        struct mastercf_diag *diags; /* a bad entry is skipped and reported here */
        size_t n_diags;
};

/*
 * Parse the text of a master.cf (need not be NUL-terminated). Problems with single entries do not fail
 * the parse: the entry is skipped and a diagnostic naming its line is kept. Returns 0, or -EFBIG when
 * len exceeds MASTERCF_TEXT_MAX. Pure: no I/O, no logging. Free *ret with mastercf_done().
 */
int mastercf_parse(const char *text, size_t len, struct mastercf *ret);
void mastercf_done(struct mastercf *m);
/* "DIR/master.cf" (malloc'd). */
char *mastercf_path(const char *config_dir);
/* Read and parse config_dir's master.cf: 0, or -errno from reading it (-ENOENT: none) or -EFBIG. The
 * caller reports problems as its context asks (fatal, a warning, a skipped instance) and the diags. */
int mastercf_load(const char *config_dir, struct mastercf *ret);
/* The service with that column-1 name and type, or NULL. */
const struct mastercf_service *mastercf_find(const struct mastercf *m, const char *name,
                                             enum mastercf_type type);
/* "inet", "unix", "unix-dgram", "fifo", "pass". */
const char *mastercf_type_to_string(enum mastercf_type t);
/* Parse a type name as written in column 2; -EINVAL when unknown. */
int mastercf_type_from_string(const char *s, enum mastercf_type *ret);
/*
 * "25"/"smtp"(25)/"submission"(587)/"smtps","submissions"(465)/"lmtp"(24); then getservbyname(…, "tcp").
 * Returns 0, -EINVAL for a malformed or zero number, -ENOENT for an unknown service name.
 */
int mastercf_port_number(const char *port, uint16_t *ret);
