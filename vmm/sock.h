#ifndef TERN_SOCK_H
#define TERN_SOCK_H

/* A listening unix socket at path (replacing a stale one), non-blocking. -1 with an error
 * line that starts with what. */
int unix_listen(const char *what, const char *path);

#endif
