/* postfix_check.c: `postfix check`: every configuration problem of the instance, one line each. */
#include "instance_check.h"
#include "log.h"
#include "postfix.h"

int postfix_check(struct config *c, int argc, char **argv)
{
        struct strv errors = STRV_INIT, warnings = STRV_INIT;

        size_t n = instance_check(c, NULL, &errors, &warnings);
        for (size_t i = 0; i < warnings.n; i++)
                msg_warn("%s", warnings.v[i]);
        for (size_t i = 0; i < errors.n; i++)
                msg_error("%s", errors.v[i]);
        strv_done(&errors);
        strv_done(&warnings);
        return n ? 1 : 0;
}
