"""Realistic planted secrets and decoys for the scanner benchmark.

Every value is generated here from a seeded RNG: nothing in this file is a
credential, and the generators only assemble well-known public formats.
"""
import base64
import json
import random
import string

AN = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
B64 = AN + "+/"
B64URL = AN + "-_"
B32 = string.ascii_uppercase + "234567"


class Gen:
    def __init__(self, rng: random.Random):
        self.r = rng

    def s(self, alphabet, n):
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def password(self):
        """A strong password with symbols, 14-20 chars, every class present."""
        n = self.r.randint(14, 20)
        parts = [self.r.choice(string.ascii_uppercase), self.r.choice(string.ascii_lowercase),
                 self.r.choice(string.digits), self.r.choice("!#%^*-_+=~?")]
        parts += [self.r.choice(AN + "!#%^*-_+=~?") for _ in range(n - 4)]
        self.r.shuffle(parts)
        return "".join(parts)

    def urlpass(self):
        return self.s(AN, self.r.randint(16, 24))

    def uuid(self):
        h = self.s(HEX, 32)
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"

    def b64(self, raw: str):
        return base64.b64encode(raw.encode()).decode()

    def pem_body(self, lines):
        return "\n".join(self.s(B64, 64) for _ in range(lines)) + "\n" + self.s(B64, 40) + "=="

    def jwt(self):
        enc = lambda d: base64.urlsafe_b64encode(json.dumps(d).encode()).decode().rstrip("=")
        head = enc({"alg": "HS256", "typ": "JWT"})
        body = enc({"sub": f"svc-{self.s(string.digits, 6)}", "iss": "auth.corp.internal",
                    "exp": 1893456000 + self.r.randint(0, 10**6)})
        return f"{head}.{body}.{self.s(B64URL, 43)}"


def secrets(g: Gen):
    """(category, file name, content) makers for real-looking leaks."""
    ak = lambda: "AKIA" + g.s(B32, 16)
    return [
        ("aws", ".aws/credentials", lambda: f"[default]\naws_access_key_id = {ak()}\naws_secret_access_key = {g.s(B64, 40)}\nregion = eu-west-1\n"),
        ("github", ".github/workflows/release.yml", lambda: f"name: release\non: push\njobs:\n  publish:\n    runs-on: ubuntu-latest\n    env:\n      GH_TOKEN: ghp_{g.s(AN, 36)}\n    steps:\n      - run: make release\n"),
        ("github-fine", "scripts/sync_repos.sh", lambda: f"#!/bin/sh\nexport GITHUB_TOKEN=github_pat_{g.s(AN, 22)}_{g.s(AN, 59)}\ngh repo sync\n"),
        ("gitlab", ".gitlab-ci.yml", lambda: f"variables:\n  GITLAB_TOKEN: glpat-{g.s(B64URL, 20)}\nstages: [build]\n"),
        ("slack", "config/notifications.yaml", lambda: f"slack:\n  channel: '#deploys'\n  bot_token: xoxb-{g.s(string.digits, 12)}-{g.s(string.digits, 13)}-{g.s(AN, 24)}\n"),
        ("slack-webhook", "ops/notify.sh", lambda: f"#!/bin/sh\ncurl -X POST --data-binary @payload.json https://hooks.slack.com/services/T{g.s(B32, 10)}/B{g.s(B32, 10)}/{g.s(AN, 24)}\n"),
        ("stripe", "billing/settings.py", lambda: f"STRIPE_PUBLISHABLE_KEY = 'pk_live_{g.s(AN, 24)}'\nSTRIPE_SECRET_KEY = 'sk_live_{g.s(AN, 99)}'\n"),
        ("openai", "ai/.env", lambda: f"OPENAI_API_KEY=sk-proj-{g.s(B64URL, 74)}T3BlbkFJ{g.s(B64URL, 74)}\n"),
        ("anthropic", "ai/config.toml", lambda: f"[llm]\nprovider = \"anthropic\"\napi_key = \"sk-ant-api03-{g.s(B64URL, 93)}AA\"\n"),
        ("sendgrid", "mail/mailer.js", lambda: f"const sg = require('@sendgrid/mail');\nsg.setApiKey('SG.{g.s(B64URL, 22)}.{g.s(B64URL, 43)}');\n"),
        ("npm", ".npmrc", lambda: f"registry=https://registry.npmjs.org/\n//registry.npmjs.org/:_authToken=npm_{g.s(AN, 36)}\n"),
        ("pypi", ".pypirc", lambda: f"[distutils]\nindex-servers = pypi\n\n[pypi]\nusername = __token__\npassword = pypi-AgEIcHlwaS5vcmc{g.s(B64URL, 120)}\n"),
        ("dockerhub", "ci/docker-login.sh", lambda: f"#!/bin/sh\necho dckr_pat_{g.s(B64URL, 27)} | docker login -u builder --password-stdin\n"),
        ("gcp-key", "web/firebase.js", lambda: f"export const firebaseConfig = {{\n  apiKey: \"AIza{g.s(B64URL, 35)}\",\n  projectId: \"shop-prod\",\n}};\n"),
        ("gcp-sa", "deploy/service-account.json", lambda: json.dumps({"type": "service_account", "project_id": "shop-prod", "private_key_id": g.s(HEX, 40), "private_key": "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC" + g.pem_body(16) + "\n-----END PRIVATE KEY-----\n", "client_email": "ci@shop-prod.iam.gserviceaccount.com", "client_id": g.s(string.digits, 21)}, indent=2) + "\n"),
        ("azure", "appsettings.Production.json", lambda: json.dumps({"Storage": {"ConnectionString": f"DefaultEndpointsProtocol=https;AccountName=shopprod;AccountKey={g.s(B64, 86)}==;EndpointSuffix=core.windows.net"}}, indent=2) + "\n"),
        ("rsa-key", "deploy/id_rsa", lambda: "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA" + g.pem_body(24) + "\n-----END RSA PRIVATE KEY-----\n"),
        ("openssh-key", "ansible/files/deploy_key", lambda: "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n" + g.pem_body(5) + "\n-----END OPENSSH PRIVATE KEY-----\n"),
        ("jwt", "api/requests.http", lambda: f"GET https://api.corp.internal/v1/orders\nAuthorization: Bearer {g.jwt()}\n"),
        ("postgres-url", ".env.production", lambda: f"DATABASE_URL=postgres://app:{g.urlpass()}@db.prod.internal:5432/shop\n"),
        ("mongo-url", "config/mongo.yml", lambda: f"uri: mongodb+srv://svc:{g.urlpass()}@cluster0.abcd.mongodb.net/prod?retryWrites=true\n"),
        ("jdbc", "src/main/resources/application.properties", lambda: f"spring.datasource.url=jdbc:mysql://db.internal:3306/shop?user=shop&password={g.urlpass()}\n"),
        ("spring-password", "src/main/resources/application-prod.properties", lambda: f"spring.datasource.username=shop\nspring.datasource.password={g.password()}\n"),
        ("yaml-password", "config/database.yml", lambda: f"production:\n  adapter: postgresql\n  username: shop\n  password: \"{g.password()}\"\n"),
        ("py-password", "settings/production.py", lambda: f"DATABASES = {{\n    'default': {{\n        'USER': 'shop',\n        'PASSWORD': '{g.password()}',\n    }}\n}}\n"),
        ("k8s-secret", "k8s/secret.yaml", lambda: f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db-credentials\ntype: Opaque\ndata:\n  username: {g.b64('shop')}\n  password: {g.b64(g.password())}\n"),
        ("k8s-stringdata", "k8s/api-secret.yaml", lambda: f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\nstringData:\n  API_TOKEN: {g.s(AN, 32)}\n"),
        ("kubeconfig", ".kube/config", lambda: f"apiVersion: v1\nkind: Config\nusers:\n- name: ci\n  user:\n    token: {g.s(B64URL, 48)}\n"),
        ("netrc", ".netrc", lambda: f"machine api.corp.internal login deploy password {g.password()}\n"),
        ("docker-auth", ".docker/config.json", lambda: json.dumps({"auths": {"registry.corp.internal": {"auth": g.b64('deploy:' + g.password())}}}, indent=2) + "\n"),
        ("vault", ".envrc", lambda: f"export VAULT_ADDR=https://vault.corp.internal:8200\nexport VAULT_TOKEN=hvs.{g.s(B64URL, 24)}\n"),
        ("huggingface", "ml/train.sh", lambda: f"#!/bin/sh\nexport HF_TOKEN=hf_{g.s(string.ascii_letters, 34)}\npython train.py\n"),
        ("datadog", "monitoring/datadog.yaml", lambda: f"datadog:\n  api_key: {g.s(HEX, 32)}\n  site: datadoghq.eu\n"),
        ("twilio", "sms/.env", lambda: f"TWILIO_ACCOUNT_SID=AC{g.s(HEX, 32)}\nTWILIO_AUTH_TOKEN={g.s(HEX, 32)}\n"),
        ("shopify", "shop/config.rb", lambda: f"ShopifyAPI::Context.setup(api_key: 'app', api_secret_key: 'shpss_{g.s(HEX, 32)}')\n"),
        ("telegram", "bot/config.py", lambda: f"TELEGRAM_BOT_TOKEN = \"{g.s(string.digits, 10)}:AA{g.s(B64URL, 33)}\"\n"),
        ("generic-api-key", "client/settings.py", lambda: f"PAYMENTS_API_KEY = \"{g.s(AN, 32)}\"\n"),
        ("django-secret", "web/settings.py", lambda: f"SECRET_KEY = '{g.s(AN + '!@#%^&*(-_=+)', 50)}'\nDEBUG = False\n"),
    ]


def decoys(g: Gen):
    """(category, file name, content) makers for things that are not secrets."""
    return [
        ("placeholder-password", "config/database.example.yml", lambda: "production:\n  username: shop\n  password: \"<strong-password>\"\n"),
        ("env-reference", ".env.example", lambda: f"DB_PASSWORD=${{DB_PASSWORD}}\nAPI_KEY=${{API_KEY_{g.s(string.ascii_uppercase, 4)}}}\n"),
        ("helm-template", "chart/templates/secret.yaml", lambda: "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {{ .Release.Name }}-db\ndata:\n  password: {{ .Values.db.password | b64enc | quote }}\n"),
        ("changeme", "docker-compose.yml", lambda: f"services:\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: changeme\n      POSTGRES_DB: app{g.s(string.digits, 3)}\n"),
        ("aws-doc-example", "docs/aws.md", lambda: "```\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n```\n"),
        ("openssl-rand", "scripts/bootstrap.sh", lambda: f"#!/bin/sh\nDB_PASSWORD=$(openssl rand -base64 32)\nkubectl create secret generic db{g.s(string.digits, 2)} --from-literal=password=\"$DB_PASSWORD\"\n"),
        ("xxxx", "config/api.yaml", lambda: "api:\n  token: xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"),
        ("your-key-here", "README.setup.md", lambda: "Set `OPENAI_API_KEY=your-api-key-here` and `STRIPE_SECRET_KEY=sk_live_...` in `.env`.\n"),
        ("k8s-placeholder-b64", "k8s/secret.example.yaml", lambda: f"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db{g.s(string.digits, 2)}\ndata:\n  password: cGFzc3dvcmQ=\n  token: Y2hhbmdlbWU=\n"),
        ("platform-readme", "PLATFORM.md", lambda: "## Secrets\n\n```sh\nvault login -method=oidc\nexport VAULT_TOKEN=$(vault print token)\nkubectl create secret generic api --from-literal=token=\"$(openssl rand -hex 32)\"\n```\n"),
        ("sha256", "release/checksums.txt", lambda: f"checksum: sha256:{g.s(HEX, 64)}\nsecret_hash = \"{g.s(HEX, 64)}\"\n"),
        ("integrity", "web/package-lock.json", lambda: json.dumps({"packages": {"node_modules/left-pad": {"version": "1.3.0", "integrity": "sha512-" + g.s(B64, 86) + "=="}}}, indent=2) + "\n"),
        ("git-sha", "ci/pins.yaml", lambda: f"actions:\n  checkout: {g.s(HEX, 40)}\n  token_commit: {g.s(HEX, 40)}\n"),
        ("uuid", "config/oauth.yaml", lambda: f"oauth:\n  client_id: {g.uuid()}\n  tenant_id: {g.uuid()}\n  secret_ref: {g.uuid()}\n"),
        ("public-key", "ssh/authorized_keys", lambda: f"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{g.s(B64, 43)} deploy@ci\n"),
        ("public-pem", "certs/public.pem", lambda: "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + g.pem_body(5) + "\n-----END PUBLIC KEY-----\n"),
        ("certificate", "certs/ca.crt", lambda: "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE" + g.pem_body(10) + "\n-----END CERTIFICATE-----\n"),
        ("truncated-pem", "docs/tls.md", lambda: "Paste the key so that it starts with\n\n    -----BEGIN RSA PRIVATE KEY-----\n    MIIEow...\n\nand ends with the END line.\n"),
        ("jwt-io-example", "docs/auth.md", lambda: "Example: `Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c`\n"),
        ("code-reference", "app/db.py", lambda: f"import os\npassword = os.environ[\"DB_PASSWORD\"]\napi_key = settings.API_KEY_{g.s(string.ascii_uppercase, 3)}\ntoken = request.headers.get(\"Authorization\")\n"),
        ("gha-secret-ref", ".github/workflows/publish.yml", lambda: "jobs:\n  publish:\n    steps:\n      - run: npm publish\n        env:\n          NODE_AUTH_TOKEN: ${{ secrets.NPM_TOKEN }}\n"),
        ("masked-token", "docs/tokens.md", lambda: "Tokens look like `ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx` or `glpat-xxxxxxxxxxxxxxxxxxxx`.\n"),
        ("password-policy", "docs/security.md", lambda: "The password must be at least 12 characters; the token expires after 24 hours.\n"),
        ("type-annotation", "src/auth.rs", lambda: "pub struct Login {\n    pub username: String,\n    pub password: SecretString,\n    pub token: Option<Token>,\n}\n"),
        ("localhost-url", "docker/.env.dev", lambda: "DATABASE_URL=postgres://postgres:postgres@localhost:5432/dev\nREDIS_URL=redis://localhost:6379\n"),
        ("url-var", "config/prod.env", lambda: "DATABASE_URL=postgres://${DB_USER}:${DB_PASSWORD}@db:5432/app\n"),
        ("image-digest", "k8s/deployment.yaml", lambda: f"spec:\n  containers:\n    - name: api\n      image: registry.corp.internal/api@sha256:{g.s(HEX, 64)}\n"),
        ("empty-values", "chart/values.yaml", lambda: "db:\n  password: \"\"\n  existingSecret: db-credentials\n  existingSecretPasswordKey: password\n"),
        ("test-word-password", "tests/fixtures/users.json", lambda: json.dumps({"users": [{"name": "alice", "password": "password123"}, {"name": "bob", "password": "hunter2"}]}) + "\n"),
        ("cargo-checksum", "Cargo.lock.sample", lambda: f"[[package]]\nname = \"serde\"\nversion = \"1.0.210\"\nchecksum = \"{g.s(HEX, 64)}\"\n"),
    ]
