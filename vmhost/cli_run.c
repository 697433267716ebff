/* cli_run.c — `firebreak run`: placeholder until the sandbox network lands. */
#include <stdio.h>

#include "vmhost/vmhost.h"

int fb_cmd_run(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "firebreak run: not yet: needs the sandbox network\n");
	return 1;
}
