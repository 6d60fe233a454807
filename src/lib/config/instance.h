/* instance.h: where one instance keeps its run-time files (pid file, sockets) and its log name. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"

struct instance_paths {
        char *config_dir;  /* config_directory */
        char *queue_dir;   /* queue_directory */
        char *daemon_dir;  /* daemon_directory */
        char *syslog_name; /* "postfix", "postfix-dept1" */
        char *pid_dir;     /* queue_directory/process_id_directory */
        char *pid_file;    /* pid_dir/master.pid */
        char *private_dir; /* queue_directory/private: unix sockets of internal services */
        char *public_dir;  /* queue_directory/public: unix sockets and fifos for local clients */
};

/*
 * The default instance's configuration directory: $POSTD_DEFAULT_CONFIG_DIR when set (tests point it at a
 * temporary directory), else the build-time POSTD_CONFIG_DIR ("/etc/postfix").
 */
const char *instance_default_config_dir(void);

/* Fill *ret from the instance's config (values are copies; free with instance_paths_done). */
void instance_paths_from_config(struct config *c, struct instance_paths *ret);
void instance_paths_done(struct instance_paths *p);

/* Path of the socket or fifo of a unix/fifo service: private/NAME or public/NAME. malloc'd. */
char *instance_socket_path(const struct instance_paths *p, const char *service, bool private_);

/*
 * The master's pid file is written by the running master and held with a POSIX write lock for its
 * whole life, so "running" means "the lock is held": a stale file left by a killed master never
 * counts. Returns 0 and the master's pid when it runs, -ESRCH when it does not.
 */
int instance_master_pid(const struct instance_paths *p, pid_t *ret);

/*
 * Create and lock pid_file, then write our pid in it (Postfix's layout: the number right-aligned in 10
 * columns and a newline). -EBUSY (and *ret_pid = the holder) when another master holds it. The returned
 * fd must stay open (and CLOEXEC) for as long as the lock should be held.
 */
int instance_lock_pid_file(const struct instance_paths *p, int *ret_fd, pid_t *ret_pid);
