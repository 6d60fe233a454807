/* queue_layout.h: the queue directory table shared by queue.c (open) and queue_layout.c (create, check). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "queue.h"

enum owner_kind { OWN_MAIL, OWN_ROOT };
enum group_kind { GRP_MAIL, GRP_SETGID, GRP_ROOT };

struct layout_entry {
        enum queue_name name;
        mode_t mode;
        enum owner_kind owner;
        enum group_kind group;
        bool message_queue; /* holds queue files: opened by queue_open */
};

extern const struct layout_entry queue_layout[];
extern const size_t queue_layout_n;
