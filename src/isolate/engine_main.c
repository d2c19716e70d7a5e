/*
 * engine_main.c - txscan-engine, the helper an engine process runs
 * (process isolation; see src/isolate/child.c). Started only by the host.
 */
#include "isolate.h"

int main(int argc, char **argv)
{
	return txs_isolate_child_main(argc, argv);
}
