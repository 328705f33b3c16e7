/* The profile worker: users and profiles, educations, certificates,
 * achievements, resumes, uploaded media, follows and staff administration.
 * Its queue is bound to profile.#, education.#, certificate.#,
 * achievement.#, resume.#, media.# and admin.#. */
#include "workers/profile/profile.h"

static const struct bk_command commands[] = {
    {"profile.list", profile_list, BK_USER, BK_READ},
    {"profile.get", profile_get, BK_USER, BK_READ},
    {"profile.me", profile_me, BK_USER, BK_READ},
    {"profile.update", profile_update, BK_USER, BK_WRITE},
    {"profile.delete", profile_delete, BK_USER, BK_WRITE},
    /* issue 14: one's own user on the source systems' routes */
    {"profile.update_user", profile_update_user, BK_USER, BK_WRITE},
    {"profile.delete_user", profile_delete_user, BK_USER, BK_WRITE},
    {"profile.set_picture", profile_set_picture, BK_USER, BK_WRITE},
    {"profile.clear_picture", profile_clear_picture, BK_USER, BK_WRITE},
    {"profile.follow", profile_follow, BK_USER, BK_WRITE},
    {"profile.unfollow", profile_unfollow, BK_USER, BK_WRITE},
    {"profile.followers", profile_followers, BK_USER, BK_READ},
    {"profile.following", profile_following, BK_USER, BK_READ},

    {"education.list", education_list, BK_USER, BK_READ},
    {"education.get", education_get, BK_USER, BK_READ},
    {"education.create", education_create, BK_USER, BK_WRITE},
    {"education.update", education_update, BK_USER, BK_WRITE},
    {"education.delete", education_delete, BK_USER, BK_WRITE},

    {"certificate.list", certificate_list, BK_USER, BK_READ},
    {"certificate.get", certificate_get, BK_USER, BK_READ},
    {"certificate.create", certificate_create, BK_USER, BK_WRITE},
    {"certificate.update", certificate_update, BK_USER, BK_WRITE},
    {"certificate.delete", certificate_delete, BK_USER, BK_WRITE},

    {"achievement.list", achievement_list, BK_USER, BK_READ},
    {"achievement.get", achievement_get, BK_USER, BK_READ},
    {"achievement.create", achievement_create, BK_USER, BK_WRITE},
    {"achievement.update", achievement_update, BK_USER, BK_WRITE},
    {"achievement.delete", achievement_delete, BK_USER, BK_WRITE},

    {"resume.list", resume_list, BK_USER, BK_READ}, /* 000's resumes viewset */
    {"resume.get", resume_get, BK_USER, BK_READ},
    {"resume.update", resume_update, BK_USER, BK_WRITE},
    {"resume.delete", resume_delete, BK_USER, BK_WRITE},
    {"resume.update_user", resume_update_user, BK_USER, BK_WRITE}, /* 000: by the owner's id */
    {"resume.delete_user", resume_delete_user, BK_USER, BK_WRITE},

    {"media.get", media_get, BK_PUBLIC, BK_READ},

    {"admin.list", admin_list, BK_STAFF, BK_READ},
    {"admin.get", admin_get, BK_STAFF, BK_READ},
    {"admin.update", admin_update, BK_STAFF, BK_WRITE},
    {"admin.delete", admin_delete, BK_STAFF, BK_WRITE},
    {"admin.set_role", admin_set_role, BK_STAFF, BK_WRITE}, /* 001's AdminUser/ */
    {"admin.logout_all", admin_logout_all, BK_STAFF, BK_WRITE},
    {"admin.audit", admin_audit, BK_STAFF, BK_READ},
    {"admin.dead_letters", admin_dead_letters, BK_STAFF, BK_READ},
    {"admin.replay_dead_letters", admin_replay_dead_letters, BK_STAFF, BK_WRITE},
    {"admin.discard_dead_letters", admin_discard_dead_letters, BK_STAFF, BK_WRITE},
    {NULL, NULL, 0, 0},
};

static int init(void)
{
    if (pr_upload_init() != 0)
        return -1;
    return pr_users_sql_init();
}

int main(int argc, char **argv)
{
    bk_worker_housekeeping(media_housekeeping, 3600);
    return bk_worker_main("profile", commands, init, argc, argv);
}
