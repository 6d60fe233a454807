/* fuzz_smtpd_access.c: smtpd's access decisions on hostile recipients and access table results. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/smtpd/smtpd.h"
#include "alloc.h"
#include "config.h"

/* Input: table result, a NUL byte, recipient address (both bounded by the input size libFuzzer picks). */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct smtpd_access *access_once(void)
{
        static struct smtpd_access *a;
        static struct config *c; /* kept for the whole run, like the daemon's */
        if (a)
                return a;
        static const char text[] =
                "myhostname = mx.example.test\n"
                "mydestination = localhost, $myhostname, inline:{example.org=x}\n"
                "mynetworks = 127.0.0.0/8, [::1]/128\n"
                "inet_interfaces = 127.0.0.1\n"
                "relay_domains = example.net\n"
                "local_recipient_maps = inline:{postmaster=x, alice=x}\n"
                "smtpd_recipient_restrictions = check_recipient_access "
                "inline:{{spam.example=REJECT no}, ok.example=OK}, reject_unauth_destination\n"
                "smtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname, "
                "check_helo_access inline:{{bad.example=REJECT bad helo}}\n"
                "smtpd_sender_restrictions = reject_non_fqdn_sender, reject_unlisted_sender, "
                "check_sender_access inline:{<>=OK, {spam.example=550 5.7.1 go away}}, warn_if_reject "
                "reject\n";
        char *err = NULL;
        if (config_load_text("/nonexistent", text, sizeof text - 1, &c) < 0 ||
            smtpd_access_new(c, &a, &err) < 0)
                abort();
        return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct smtpd_access *a = access_once();
        const uint8_t *nul = memchr(data, 0, size);
        size_t vlen = nul ? (size_t)(nul - data) : size;
        char *value = xstrndup((const char *)data, vlen);
        char *rcpt = nul ? xstrndup((const char *)nul + 1, size - vlen - 1) : xstrdup("");

        struct access_decision d;
        d = (struct access_decision){.result = ACCESS_PASS};
        smtpd_access_table_result(a, "fuzz", value, rcpt, "Recipient address", &d);
        if (d.result == ACCESS_REJECT && (!d.reply || strlen(d.reply) < 4))
                abort();
        access_decision_done(&d);

        /* The same hostile text as HELO name, sender and recipient: every list sees it. */
        struct access_client cl = {"unknown", size % 2 ? "127.0.0.1" : "192.0.2.1", false, NULL, NULL};
        struct access_request rq = {&cl, rcpt, size % 3 ? rcpt : "", rcpt, NULL};
        smtpd_access_check(a, ACCESS_STAGE_RCPT, &rq, &d);
        if ((d.result == ACCESS_REJECT) != (d.reply != NULL))
                abort();
        /* A reply is one line: the session sends it as is. */
        if (d.reply && (strchr(d.reply, '\n') || strchr(d.reply, '\r')) && !memchr(data, '\n', size) &&
            !memchr(data, '\r', size))
                abort();
        access_decision_done(&d);
        free(value);
        free(rcpt);
        return 0;
}
