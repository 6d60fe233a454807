/* fuzz_dovecot_auth.c: libFuzzer target for the Dovecot auth-client handshake and reply parsers. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"
#include "dovecot_auth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Each input line goes to the handshake until DONE, then to the reply parser, as a server's bytes would. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *in = xstrndup((const char *)data, size);
        struct dovecot_auth_handshake h = {0};
        char *save = NULL;
        for (char *line = strtok_r(in, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
                if (!h.done) {
                        int r = dovecot_auth_handshake_line(&h, line);
                        if (r < 0)
                                break;
                        if (h.n_mechs > DOVECOT_AUTH_MECHS_MAX)
                                abort();
                        for (size_t i = 0; i < h.n_mechs; i++)
                                if (!h.mechs[i].name[0] || strpbrk(h.mechs[i].name, "\t "))
                                        abort();
                        continue;
                }
                struct dovecot_auth_reply r;
                if (dovecot_auth_reply_parse(line, &r) == 0) {
                        if (r.type == DOVECOT_AUTH_CONT && !r.data)
                                abort();
                        /* a challenge is relayed to the SMTP client: it must never carry a line break */
                        if (r.data && strpbrk(r.data, "\r\n"))
                                abort();
                        char *cont = dovecot_auth_format_cont(r.id, r.data ? r.data : "");
                        if (cont && (strchr(cont, '\n') != cont + strlen(cont) - 1))
                                abort();
                        free(cont);
                }
                dovecot_auth_reply_done(&r);
        }
        free(in);
        return 0;
}
