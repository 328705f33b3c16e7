/* backendctl subcommands: each takes the arguments after its name and returns
 * the process exit status. */
#ifndef CTL_H
#define CTL_H

int ctl_migrate(int argc, char **argv);
int ctl_keygen(int argc, char **argv);
int ctl_service_token(int argc, char **argv);
int ctl_createsuperuser(int argc, char **argv);
int ctl_flush_expired(int argc, char **argv);
int ctl_replay_dead_letters(int argc, char **argv);

#endif
