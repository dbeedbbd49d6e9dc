/*
 * Test helpers: start and stop a real scepserver, make identities and signed profiles.
 */
#include "sim_test_util.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/rsa.h>

#include "common/crypto.h"
#include "common/plistx.h"
#include "common/xmalloc.h"
#include "support/support.h"

int ts_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), port;
    struct sockaddr_in sin;
    socklen_t sl = sizeof(sin);

    cr_assert(fd >= 0);
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    cr_assert(bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0);
    cr_assert(getsockname(fd, (struct sockaddr *)&sin, &sl) == 0);
    port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

void ts_scep_start(struct scep_srv *s, const char *challenge)
{
    char *depot, *log, portstr[16];
    struct scepter_error err;
    int rc;

    memset(s, 0, sizeof(*s));
    s->dir = tu_tmpdir();
    depot = xasprintf("%s/depot", s->dir);
    log = xasprintf("%s/scepserver.log", s->dir);
    rc = tu_sh(NULL, "scepserver ca -init -depot '%s' -keySize 2048 >/dev/null 2>&1", depot);
    cr_assert_eq(rc, 0, "scepserver ca -init failed (is Debian's scep package installed?)");
    s->port = ts_free_port();
    snprintf(portstr, sizeof(portstr), "%d", s->port);
    pid_t parent = getpid();
    s->pid = fork();
    cr_assert(s->pid >= 0);
    if (s->pid == 0) {
        int fd;
        /* Die with the test process, even when it fails or crashes before ts_scep_stop. */
        setpgid(0, 0);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execlp("scepserver", "scepserver", "-depot", depot, "-port", portstr, "-challenge",
               challenge, (char *)NULL);
        _exit(127);
    }
    setpgid(s->pid, s->pid);
    tu_track_pid(s->pid); /* killed at exit if the test ends before ts_scep_stop */
    s->url = xasprintf("http://127.0.0.1:%d/scep", s->port);
    /* Bounded start-up wait: up to 150 x 100 ms for GetCACaps to answer. */
    for (int i = 0; i < 150; i++) {
        struct sim_http_reply r;
        char *u = xasprintf("%s?operation=GetCACaps", s->url);
        int ok = sim_http_fetch("GET", u, NULL, NULL, 0, NULL, NULL, NULL, 1000, &r, &err);
        free(u);
        if (ok == 0 && r.status == 200) {
            sim_http_reply_clear(&r);
            break;
        }
        sim_http_reply_clear(&r);
        cr_assert(i < 149, "scepserver did not start within 15 s (log: %s)", log);
        usleep(100000);
    }
    {
        char *pem = xasprintf("%s/ca.pem", depot);
        s->ca = crypto_cert_load(pem, &err);
        cr_assert_not_null(s->ca, "%s", err.msg);
        free(pem);
    }
    free(depot);
    free(log);
}

void ts_scep_stop(struct scep_srv *s)
{
    if (s->pid > 0) {
        int status;
        kill(s->pid, SIGTERM);
        /* Bounded: 5 s for SIGTERM, then SIGKILL. */
        for (int i = 0; i < 500 && waitpid(s->pid, &status, WNOHANG) == 0; i++)
            usleep(10000);
        if (kill(s->pid, 0) == 0) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
        }
        killpg(s->pid, SIGKILL);
        tu_untrack_pid(s->pid);
    }
    if (s->dir) {
        tu_rmtree(s->dir);
        free(s->dir);
    }
    free(s->url);
    X509_free(s->ca);
    memset(s, 0, sizeof(*s));
}

void ts_identity(const char *cn, X509 **cert, EVP_PKEY **key)
{
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_RSA, NULL);
    X509 *c = X509_new();
    X509_NAME *n;

    *key = NULL;
    cr_assert(EVP_PKEY_keygen_init(kc) == 1);
    cr_assert(EVP_PKEY_CTX_set_rsa_keygen_bits(kc, 2048) == 1);
    cr_assert(EVP_PKEY_keygen(kc, key) == 1);
    EVP_PKEY_CTX_free(kc);
    X509_set_version(c, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(c), (long)time(NULL));
    n = X509_get_subject_name(c);
    X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(c, n);
    X509_gmtime_adj(X509_getm_notBefore(c), -3600);
    X509_gmtime_adj(X509_getm_notAfter(c), 86400);
    X509_set_pubkey(c, *key);
    cr_assert(X509_sign(c, *key, EVP_sha256()) > 0);
    *cert = c;
}

unsigned char *ts_cms_sign(const void *data, size_t len, X509 *cert, EVP_PKEY *key, size_t *outlen)
{
    BIO *in = BIO_new_mem_buf(data, (int)len);
    CMS_ContentInfo *cms = CMS_sign(cert, key, NULL, in, CMS_BINARY);
    unsigned char *der = NULL, *copy;
    int n;

    cr_assert_not_null(cms);
    n = i2d_CMS_ContentInfo(cms, &der);
    cr_assert(n > 0);
    copy = xmemdup(der, (size_t)n);
    *outlen = (size_t)n;
    OPENSSL_free(der);
    CMS_ContentInfo_free(cms);
    BIO_free(in);
    return copy;
}

char *ts_xml(plist_t p, size_t *len)
{
    return plistx_to_xml(p, len);
}

struct sim_device *ts_enrolled_device(enum sim_platform platform, uint64_t rights)
{
    size_t len;
    unsigned char *data = tu_read_data("profiles/enroll.mobileconfig", &len);
    struct sim_profile *p = NULL;
    struct scepter_error err;
    struct sim_facts f;
    struct sim_device *d;
    X509 *cert;
    EVP_PKEY *key;
    plist_t root, mdm = NULL;
    unsigned char tok[32];

    /* Adjust AccessRights in the fixture when asked, keeping everything else. */
    cr_assert_eq(plistx_parse_dict(data, len, &root, &err), 0);
    free(data);
    for (uint32_t i = 0; i < plist_array_get_size(plist_dict_get_item(root, "PayloadContent"));
         i++) {
        plist_t pl = plist_array_get_item(plist_dict_get_item(root, "PayloadContent"), i);
        if (strcmp(plist_get_string_ptr(plist_dict_get_item(pl, "PayloadType"), NULL),
                   "com.apple.mdm") == 0)
            mdm = pl;
    }
    cr_assert_not_null(mdm);
    plistx_set_uint(mdm, "AccessRights", rights);
    data = (unsigned char *)plistx_to_xml(root, &len);
    plist_free(root);
    cr_assert_eq(sim_profile_parse(data, len, NULL, &p, &err), 0, "%s", err.msg);
    free(data);
    sim_facts_generate(&f, platform, 42, 7);
    d = sim_device_new(&f);
    ts_identity(f.udid, &cert, &key);
    cr_assert_eq(sim_device_enroll(d, p, cert, key, &err), 0, "%s", err.msg);
    memset(tok, 0xab, sizeof(tok));
    sim_device_set_push(d, tok, "PUSH-MAGIC-1");
    X509_free(cert);
    EVP_PKEY_free(key);
    sim_profile_free(p);
    return d;
}

char *ts_command(const char *uuid, const char *type, plist_t params, size_t *len)
{
    plist_t root = plist_new_dict(), cmd = params ? params : plist_new_dict();
    char *xml;

    plistx_set_string(root, "CommandUUID", uuid);
    plistx_set_string(cmd, "RequestType", type);
    plist_dict_set_item(root, "Command", cmd);
    xml = plistx_to_xml(root, len);
    plist_free(root);
    return xml;
}

plist_t ts_payload(const char *type, const char *identifier, const char *uuid)
{
    plist_t p = plist_new_dict();

    plistx_set_string(p, "PayloadType", type);
    plistx_set_string(p, "PayloadIdentifier", identifier);
    plistx_set_string(p, "PayloadUUID", uuid);
    plistx_set_uint(p, "PayloadVersion", 1);
    return p;
}

plist_t ts_profile(const char *identifier, const char *uuid, plist_t payloads)
{
    plist_t p = plist_new_dict();

    plistx_set_string(p, "PayloadType", "Configuration");
    plistx_set_string(p, "PayloadIdentifier", identifier);
    plistx_set_string(p, "PayloadUUID", uuid);
    plistx_set_uint(p, "PayloadVersion", 1);
    plistx_set_string(p, "PayloadDisplayName", "Test profile");
    plist_dict_set_item(p, "PayloadContent", payloads);
    return p;
}
