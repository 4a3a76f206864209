#ifndef TERN_SOCK_H
#define TERN_SOCK_H

/* A listening unix socket at path (replacing a stale one), non-blocking. -1 with an error
 * line that starts with what. */
int unix_listen(const char *what, const char *path);
/* Makes room for a socket at path: removes an old socket there. -1 with errno, EEXIST for a
 * file there that is not a socket (not ours to remove). */
int unix_unlink_stale(const char *path);

#endif
