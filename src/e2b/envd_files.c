/*
 * envd_files.c - envd's plain HTTP file routes: GET /files (a file's raw
 * bytes: files.read, downloadUrl()) and POST /files (multipart/form-data
 * with full-path filenames, or application/octet-stream with ?path=, gzip
 * or not: files.write, writeFiles, uploadUrl()). Both are encodings over
 * the file API's download and upload (api/files_download.c,
 * api/files_upload.c): same workers, same streaming, same sandbox_files.c
 * path resolution, so nothing here opens a sandbox path.
 *
 * Who acts: ?username= (the SDK's), else the Basic-auth user, else the
 * sandbox's default user; a name the sandbox does not have is a 401, as
 * envd answers. Credentials: for a secure sandbox, X-Access-Token or a
 * signature (spec §6.4) that the SDK's uploadUrl()/downloadUrl() put in
 * the URL: "v1_" + unpadded base64 of SHA-256("<path>:<op>:<user>:<token>"
 * [":<expiration>"]), op read or write, compared in constant time; an
 * expired or wrong one is a 401 and nothing is read or written, and a
 * token that is sent must be right even beside a signature. An unsecured
 * sandbox needs neither. A signed URL fetched
 * without E2b-Sandbox-Id (as the SDK makes it, when one port serves every
 * sandbox) is routed here by its signature (e2b_request_dialect) and finds
 * its sandbox by it.
 *
 * Owns nothing past the handler: the api/ calls copy what they keep.
 */
#include <errno.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "api/app.h"
#include "api/files.h"
#include "e2b/e2b.h"
#include "e2b/envd.h"

#define SIGNATURE_MAX 128

int e2b_files_signature(const char *path, const char *op, const char *user, const char *token,
                        const char *expiration, char *out, size_t out_len)
{
    crypto_hash_sha256_state st;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_init(&st);
    const char *pieces[] = {path, ":", op, ":", user, ":", token};
    for (size_t i = 0; i < sizeof pieces / sizeof pieces[0]; i++)
        crypto_hash_sha256_update(&st, (const unsigned char *)pieces[i], strlen(pieces[i]));
    if (expiration) {
        crypto_hash_sha256_update(&st, (const unsigned char *)":", 1);
        crypto_hash_sha256_update(&st, (const unsigned char *)expiration, strlen(expiration));
    }
    crypto_hash_sha256_final(&st, digest);
    if (out_len < 3 + sodium_base64_ENCODED_LEN(sizeof digest, sodium_base64_VARIANT_ORIGINAL_NO_PADDING))
        return -1;
    memcpy(out, "v1_", 3);
    sodium_bin2base64(out + 3, out_len - 3, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL_NO_PADDING);
    return 0;
}

/* The expiration as the number it is ("0123" and "123" are one, as envd
 * parses it before signing): 0, or -1 with 401 when it is not digits. */
static int expiration_canonical(const char *expiration, char out[24], long long *value, struct sb_err *err)
{
    char *end;
    errno = 0;
    long long exp = strtoll(expiration, &end, 10);
    if (!*expiration || *end || errno || exp < 0)
        return sb_err_set(err, 401, "invalid signature_expiration: a Unix time in seconds");
    snprintf(out, 24, "%lld", exp);
    *value = exp;
    return 0;
}

/* 1 when signature is token's for the rest (constant time), else 0. */
static int signature_matches(const char *path, const char *op, const char *user, const char *token,
                             const char *signature, const char *canonical_exp)
{
    char want[SIGNATURE_MAX];
    if (e2b_files_signature(path, op, user, token, canonical_exp, want, sizeof want) < 0)
        return 0;
    size_t len = strlen(want);
    return strlen(signature) == len && sodium_memcmp(want, signature, len) == 0;
}

int e2b_files_check_signature(const char *path, const char *op, const char *user, const char *token,
                              const char *signature, const char *expiration, int64_t now, struct sb_err *err)
{
    if (!signature || !*signature)
        return sb_err_set(err, 401, "this sandbox is secured: send X-Access-Token, or use a signed URL "
                          "(uploadUrl()/downloadUrl()) with signature and signature_expiration");
    char canonical[24];
    long long exp = 0;
    if (expiration && expiration_canonical(expiration, canonical, &exp, err) < 0)
        return -1;
    /* the signature first, then its expiration, as envd checks them */
    if (!signature_matches(path, op, user, token, signature, expiration ? canonical : NULL))
        return sb_err_set(err, 401, "invalid signature for %s of '%.200s' as '%.32s'", op, path, user);
    if (expiration && exp < now)
        return sb_err_set(err, 401, "the signed URL expired at %lld (now %" PRId64 "): ask for a new one",
                          exp, now);
    return 0;
}

/* A signed URL fetched without E2b-Sandbox-Id (a browser, curl, fetch()
 * of what uploadUrl()/downloadUrl() made, with no proxy to name the
 * sandbox): the running secure sandbox whose token made the signature. One
 * store read of the running sandboxes and a SHA-256 per secure one, on the
 * loop; every comparison in constant time, so which sandbox matched (or
 * how far a guess got) does not show in the time. 401 when none did. */
static int sandbox_by_signature(struct sb_request *req, const char *op, struct sb_sandbox_rec *rec,
                                struct sb_err *err)
{
    const char *path = sb_request_query(req, "path");
    const char *user = sb_request_query(req, "username");
    const char *signature = sb_request_query(req, "signature");
    const char *expiration = sb_request_query(req, "signature_expiration");
    char canonical[24];
    long long exp;
    if (expiration && expiration_canonical(expiration, canonical, &exp, err) < 0)
        return -1;
    struct sb_sandbox_rec *list;
    size_t count;
    if (store_sandbox_list(api_app(req)->store, NULL, SB_SANDBOX_STATUS_BIT(SB_SANDBOX_RUNNING), &list, &count,
                           err) < 0)
        return -1;
    size_t found = count;
    for (size_t i = 0; i < count; i++)
        if (list[i].envd_token[0] && found == count &&
            signature_matches(path ? path : "", op, user ? user : "", list[i].envd_token, signature,
                              expiration ? canonical : NULL))
            found = i;
    int rc = -1;
    if (found < count) {
        *rec = list[found];
        memset(&list[found], 0, sizeof list[found]);    /* moved to rec */
        rc = 0;
    } else {
        sb_err_set(err, 401, "invalid signature: it is no running secure sandbox's for %s of '%.200s' "
                   "(send E2b-Sandbox-Id to name the sandbox)", op, path ? path : "");
    }
    store_sandbox_list_free(list, count);
    return rc;
}

/* The sandbox, the acting user and the credential of a /files request; rec
 * is the caller's to clear on success. */
static int files_request(struct sb_request *req, const char *op, struct sb_sandbox_rec *rec,
                         const char **user, struct sb_err *err)
{
    int named = sb_request_header(req, "E2b-Sandbox-Id") != NULL;
    if ((named ? e2b_envd_sandbox(req, 0, rec, err) : sandbox_by_signature(req, op, rec, err)) < 0)
        return -1;
    const char *username = sb_request_query(req, "username");
    int rc = username ? e2b_envd_user_name(username, user, err) : e2b_envd_user(req, user, err);
    const char *token = sb_request_header(req, "X-Access-Token");
    if (rc == 0 && token && *token && !e2b_envd_token_ok(rec, token)) {
        /* a token that is sent must be right, signature or not (as envd) */
        rc = sb_err_set(err, 401, "invalid X-Access-Token for sandbox %s", rec->id);
    } else if (rc == 0 && rec->envd_token[0] && !(token && *token)) {
        const char *path = sb_request_query(req, "path");
        rc = e2b_files_check_signature(path ? path : "", op, username ? username : "", rec->envd_token,
                                       sb_request_query(req, "signature"),
                                       sb_request_query(req, "signature_expiration"), (int64_t)time(NULL), err);
    }
    if (rc < 0)
        store_sandbox_rec_clear(rec);
    return rc;
}

/* GET /files?path=[&username=]: the file's bytes (404 "path '...' does not
 * exist", the SDK's FileNotFoundError; 400 for a directory). */
void e2b_envd_files_get(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    const char *user;
    if (files_request(req, "read", &rec, &user, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    const char *path = sb_request_query(req, "path");
    if (!path || !*path)
        sb_respond_error(req, (sb_err_set(&err, 400, "missing query parameter: path"), &err));
    else
        files_download_as(req, rec.org_id, rec.id, user, path, 1);
    store_sandbox_rec_clear(&rec);
}

/* A refusal of an upload once its body is in (read and dropped): answered
 * at the headers, the connection would close under a client still
 * sending, which then sees a broken pipe instead of the status. */
struct refusal {
    struct sb_err err;
};

static void refusal_answer(struct sb_request *req, struct refusal *r)
{
    sb_request_complete_error(req, &r->err);
    free(r);
}

static enum sb_body_verdict refusal_data(struct sb_request *req, void *arg, const char *data, size_t len)
{
    (void)data, (void)len;
    refusal_answer(req, arg);
    return SB_BODY_STOP;        /* the rest is read and dropped, then the answer goes */
}

static void refusal_end(struct sb_request *req, void *arg, const struct sb_err *err)
{
    (void)err;
    refusal_answer(req, arg);
}

static void refuse_upload(struct sb_request *req, const struct sb_err *err)
{
    struct refusal *r = malloc(sizeof *r);
    struct sb_err sink_err;
    if (r) {
        r->err = *err;
        if (sb_request_body_sink(req, 0, refusal_data, refusal_end, r, &sink_err) == 0)
            return;
        free(r);
    }
    sb_respond_error(req, err);
}

/* POST /files[?path=][&username=]: the upload; answers
 * [{"path","name","type":"file"}, ...], one per file written. */
void e2b_envd_files_post(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_sandbox_rec rec;
    const char *user;
    if (files_request(req, "write", &rec, &user, &err) < 0) {
        refuse_upload(req, &err);
        return;
    }
    files_upload_as(req, rec.org_id, rec.id, user, sb_request_query(req, "path"));
    store_sandbox_rec_clear(&rec);
}
