"""test_mail_loop.py: hopcount_limit: two instances that relay a domain to each other (neither is its final
destination) pass a message back and forth only until it carries hopcount_limit Received: headers; then
cleanup refuses it with 5.4.6 "too many hops" and the sending side returns it to its sender."""
import re
import smtplib
import time

import pytest

from mailinstance import DEFAULT_MASTER_CF, TEST_USER, free_port, wait_for

MASTER_CF = DEFAULT_MASTER_CF + "smtp      unix  -       -       n       -       -       smtp\n"
SENDER = f"{TEST_USER}@localhost"  # local to both instances: the bounce is delivered where it is made


def relay_pair(mail_instance, limit_line):
    """Instances A and B, each with the other as relayhost; returns (a, b)."""
    pa, pb = free_port(), free_port()
    insts = []
    for name, port, other in (("postfix-a", pa, pb), ("postfix-b", pb, pa)):
        inst = mail_instance(name=name, port=port, master_cf=MASTER_CF,
                             main_extra="mynetworks = 127.0.0.1/32\n"
                                        f"relayhost = [127.0.0.1]:{other}\n" + limit_line)
        # Distinct names: the smtp client's own loop check (greeting = myhostname) must not catch it.
        inst.postconf(f"myhostname = {name[8:]}.example.test")
        inst.start()
        insts.append(inst)
    return insts


def relayed(inst):
    return len(re.findall(r"relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent", inst.logtext()))


@pytest.mark.parametrize("limit, hops", [(None, 50), (10, 10)])
def test_relay_loop_ends_with_5_4_6(mail_instance, limit, hops):
    a, b = relay_pair(mail_instance, f"hopcount_limit = {limit}\n" if limit else "")
    start = time.monotonic()
    with smtplib.SMTP("127.0.0.1", a.port, timeout=20) as s:
        s.ehlo("client.example")
        s.sendmail(SENDER, ["someone@loop.example"], b"Subject: loop\r\n\r\nround and round\r\n")

    def bounced():
        for inst in (a, b):
            m = re.search(r"to=<someone@loop\.example>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*"
                          r"dsn=5\.4\.6, status=bounced \(.*too many hops.*\)", inst.logtext())
            if m:
                return inst
        return None

    # Bounded: a loop that is not stopped never bounces, and this fails after 90 s.
    loser = wait_for(bounced, 90, "the looping message to bounce with 5.4.6")
    elapsed = time.monotonic() - start
    # The receiving cleanup said why, and the message went round exactly until the limit: the one that
    # arrived with `hops` Received: headers was refused (the first smtpd adds one as well).
    other = b if loser is a else a
    other.wait_log(r"reject: (\d+) Received: headers, hopcount_limit is %d: 5\.4\.6 too many hops" % hops)
    assert relayed(a) + relayed(b) == hops - 1, (relayed(a), relayed(b))
    # The sender hears of it, in the mailbox of the instance that made the bounce.
    wait_for(lambda: b"too many hops" in loser.mbox(TEST_USER), 30, "the bounce in the sender's mailbox")
    assert elapsed < 90
    # Nothing left looping: both queues drain.
    for inst in (a, b):
        wait_for(lambda: not inst.queue_files("incoming") and not inst.queue_files("active")
                 and not inst.queue_files("deferred"), 30, f"{inst.name}'s queue to drain")
