/*
 * vmhost.h — the launcher: a sandbox's namespace, guest link, nft table,
 * CA, proxy and guest; and the `firebreak` command line.
 *
 * Each `firebreak` sub-command is one function taking the arguments after
 * its name (argv[0] is the sub-command) and returning the process status:
 * 0 success, 1 a failure it reported, 2 a usage error.
 */
#ifndef FB_VMHOST_H
#define FB_VMHOST_H

#include <stdio.h>

int fb_cmd_policy(int argc, char **argv); /* check | explain | dump | get | set | patch */
int fb_cmd_run(int argc, char **argv);
/* `policy get|set|patch SANDBOX [FILE]`: the running sandbox's control socket. */
int fb_cmd_policy_remote(int argc, char **argv);
/* `create | ls | rm | logs`: firebreak-vmhost's sandboxes, over its socket. */
int fb_cmd_daemon(int argc, char **argv);

/*
 * A server's message to out, with `stand_in` (the name a server gives a
 * policy it was sent as text: "<body>") replaced by `file` wherever a
 * position or message follows it ("<body>:3:5: ..."), so that an error
 * names the user's file as `policy check` does.
 */
void fb_print_named(FILE *out, const char *text, const char *stand_in,
		    const char *file);

#endif /* FB_VMHOST_H */
