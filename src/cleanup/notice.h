/* notice.h: telling qmgr about newly queued messages, several per connection. */
#pragma once

#include "event.h"

struct notice;

int notice_new(struct event_loop *e, const char *qmgr_socket, struct notice **ret);
/* qmgr hears of queue_id once this turn of the event loop is over, with the other IDs added meanwhile. */
void notice_add(struct notice *n, const char *queue_id);
void notice_free(struct notice *n);
