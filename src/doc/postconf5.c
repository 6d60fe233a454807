/* postconf5.c: build-time tool that prints the postconf(5) manual page, in roff, from the one parameter
 * table. */
#include <stdio.h>
#include <string.h>

#include "params.h"
#include "postd-build.h"

/* Text for roff: backslashes and dashes escaped, a leading control character made literal. */
static void put_roff(const char *s)
{
        if (*s == '.' || *s == '\'')
                fputs("\\&", stdout);
        for (; *s; s++) {
                switch (*s) {
                case '\\': fputs("\\e", stdout); break;
                case '-': fputs("\\-", stdout); break;
                case '\n': fputc(' ', stdout); break;
                default: fputc(*s, stdout);
                }
        }
}

static const char *unit_name(char unit)
{
        switch (unit) {
        case 's': return "seconds";
        case 'm': return "minutes";
        case 'h': return "hours";
        case 'd': return "days";
        case 'w': return "weeks";
        }
        return "seconds";
}

static void put_param(const struct param_def *p)
{
        fputs(".TP\n.B ", stdout);
        put_roff(p->name);
        fputs("\n", stdout);
        put_roff(p->description);
        fputs(".\n.br\nType: ", stdout);
        fputs(param_type_to_string(p->type), stdout);
        if (p->type == PARAM_TIME) {
                fputs(" (a bare number is in ", stdout);
                fputs(unit_name(p->unit), stdout);
                fputs(")", stdout);
        }
        if (p->flags & PARAM_F_TABLES)
                fputs("; elements may be lookup tables (type:name)", stdout);
        fputs(".\n.br\nDefault: ", stdout);
        if (*p->def) {
                fputs("\\fB", stdout);
                put_roff(p->def);
                fputs("\\fR", stdout);
        } else
                fputs("empty", stdout);
        if (p->flags & PARAM_F_DYNAMIC)
                fputs(" (computed at run time from the host or the build; postconf \\-d shows this host's "
                      "value)",
                      stdout);
        fputs(".\n", stdout);
        if (p->flags & PARAM_F_READONLY)
                fputs(".br\nInformational: not meant to be set in main.cf.\n", stdout);
        if (p->flags & PARAM_F_INERT)
                fputs(".br\n\\fBNot acted on by postd yet:\\fR setting it to anything but its default earns "
                      "a "
                      "warning from postfix check and from the master at every start.\n",
                      stdout);
}

int main(void)
{
        size_t n = 0;
        const struct param_def *t = param_table(&n);
        size_t inert = 0;
        for (size_t i = 0; i < n; i++)
                inert += !!(t[i].flags & PARAM_F_INERT);

        printf(".\\\" postconf.5: generated at build time by src/doc/postconf5.c from src/lib/config/params.c; do "
               "not edit.\n"
               ".TH POSTCONF 5 2026 postd \"postd manual\"\n"
               ".SH NAME\n"
               "postconf \\- main.cf parameters of postd (Postfix's configuration syntax)\n"
               ".SH SYNOPSIS\n"
               ".B postconf \\-d\n"
               ".br\n"
               ".B postconf\n"
               ".I parameter\n"
               ".SH DESCRIPTION\n"
               "Each instance's\n"
               ".I main.cf\n"
               "(\\fI%s/main.cf\\fR for the default instance) sets parameters as\n"
               ".IR \"name = value\" .\n"
               "A line that starts with white space continues the previous one; a line\n"
               "that starts with\n"
               ".B #\n"
               "is a comment. A value may use other parameters as\n"
               ".IR $name ,\n"
               ".IR ${name} ,\n"
               ".I ${name?text}\n"
               "(text when name is not empty) and\n"
               ".I ${name:text}\n"
               "(text when name is empty). Lists are separated by commas or white space.\n"
               "Times are numbers with an optional unit\n"
               "(s, m, h, d or w);\n"
               "sizes are in bytes.\n"
               ".PP\n"
               "This page is generated from the parameter table of postd version %s: it lists\n"
               "all %zu parameters postd knows. %zu of them are known to Postfix users but\n"
               ".B not acted on by postd yet;\n"
               "each says so below, and\n"
               ".B postfix check\n"
               "and the master at every start name each one that main.cf sets to something\n"
               "other than its default.\n"
               "A parameter missing from this page is not a built\\-in one; postfix check\n"
               "warns about it.\n"
               ".PP\n"
               "Per\\-service parameters such as\n"
               ".I relay_destination_concurrency_limit\n"
               "take the name of a master.cf service as prefix and default to the\n"
               "corresponding\n"
               ".I default_\n"
               "or\n"
               ".I smtp_\n"
               "parameter.\n"
               ".SH PARAMETERS\n",
               POSTD_CONFIG_DIR, POSTD_VERSION, n, inert);
        for (size_t i = 0; i < n; i++)
                put_param(&t[i]);
        printf(".SH SEE ALSO\n"
               ".BR postconf (1),\n"
               ".BR postfix (1),\n"
               ".BR postmulti (1),\n"
               ".BR postd\\-instances (7)\n");
        return ferror(stdout) || fflush(stdout) != 0 ? 1 : 0;
}
