/* cli_policy.c — placeholder until the policy commands land. */
#include <stdio.h>

#include "vmhost/vmhost.h"

int fb_cmd_policy(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "firebreak policy: not yet\n");
	return 1;
}
