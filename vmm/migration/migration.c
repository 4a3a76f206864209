#include "vmm/migration/migration.h"
#include "vmm/util.h"
#include "vmm/vm.h"

int migration_init(struct vm *vm)
{
	return 0;
}

int migration_incoming(struct vm *vm, const char *uri)
{
	errorf("-incoming: migration is not supported yet");
	return -1;
}
