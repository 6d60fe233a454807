/* selabel.h: give what postd creates the SELinux label the loaded policy's file_contexts assign. */
#pragma once

#include <stdbool.h>

/*
 * Restores the SELinux label of path (and, if recursive, of everything below it) as restorecon(8)
 * would. Returns 0 when done, when SELinux is disabled or absent, or when postd was built without
 * libselinux; a negative errno when relabelling failed (the caller decides whether that matters).
 */
int selabel_restore(const char *path, bool recursive);
