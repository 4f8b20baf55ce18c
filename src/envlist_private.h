/*
 * What the payload's flattening reaches inside an envlist: it writes its
 * admitted entries into one block the list frees, appends them without a
 * look-up (their names are new), and reads entries' names. Only
 * envlist.c and the flattening include this.
 */
#ifndef HOOKD_ENVLIST_PRIVATE_H
#define HOOKD_ENVLIST_PRIVATE_H

#include <stddef.h>

#include "envlist.h"

/* A block for len bytes of entries, which e frees. */
char *envlist_block(struct envlist *e, size_t len);
/* Appends entry (strlen len) without looking for its NAME. */
void envlist_append_len(struct envlist *e, char *entry, size_t len);
/* The length of an entry's NAME (up to its '='). */
size_t envlist_entry_name_len(const char *entry);

#endif
