/*
 * QMP, the JSON monitor for programs (-qmp unix:PATH,server,nowait): QEMU's greeting,
 * command names, field names and events, so existing QMP clients work with tern.
 */
#ifndef TERN_QMP_H
#define TERN_QMP_H

struct vm;

int qmp_create(struct vm *vm, const char *spec);

#endif
