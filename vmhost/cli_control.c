/* cli_control.c — placeholder until the proxy's control API lands. */
#include <stdio.h>

#include "vmhost/vmhost.h"

int fb_cmd_policy_remote(int argc, char **argv)
{
	(void)argc;
	fprintf(stderr, "firebreak policy %s: not yet: needs the proxy\n", argv[0]);
	return 1;
}
