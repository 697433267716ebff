/* main_firebreak.c — the `firebreak` command: dispatch to a sub-command. */
#include <stdio.h>
#include <string.h>

#include "vmhost/vmhost.h"

static const struct command {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
} commands[] = {
	{ "policy", fb_cmd_policy, "check, explain or dump a policy file" },
	{ "run", fb_cmd_run, "run a command in a sandbox under a policy" },
	{ "create", fb_cmd_daemon, "start a sandbox through firebreak-vmhost" },
	{ "ls", fb_cmd_daemon, "list firebreak-vmhost's sandboxes" },
	{ "rm", fb_cmd_daemon, "remove firebreak-vmhost's sandboxes" },
	{ "logs", fb_cmd_daemon, "print a sandbox's audit log" },
};

static void usage(FILE *out)
{
	fprintf(out, "usage: firebreak COMMAND [ARGS]...\n\ncommands:\n");
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
	fprintf(out, "\n'firebreak COMMAND --help' describes each.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	fprintf(stderr, "firebreak: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
