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

int fb_cmd_policy(int argc, char **argv); /* check | explain | dump | get | set | patch */
int fb_cmd_run(int argc, char **argv);
/* `policy get|set|patch SANDBOX [FILE]`: the running sandbox's control socket. */
int fb_cmd_policy_remote(int argc, char **argv);
/* `create | ls | rm | logs`: firebreak-vmhost's sandboxes, over its socket. */
int fb_cmd_daemon(int argc, char **argv);

#endif /* FB_VMHOST_H */
