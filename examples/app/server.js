'use strict';
/*
 * The example application: a plain Node.js HTTP server (no framework) on the web servers.
 * Writes go to the MySQL primary; reads come from the local database (on the replica's host,
 * the replica), so a page shows replication at work. Deployed by provision as a release
 * (docs/deploy.md): replace this directory by your own application's (`app_source`).
 *
 * The contract it follows: started as `node server.js` in its release directory, as the app user,
 * with PORT (and HOST, the listen address) and DB_WRITE_HOST, DB_READ_HOST, DB_PORT, DB_NAME,
 * DB_USER, DB_PASSWORD in its environment (and DB_SSL_CA: the CA bundle its database connections verify
 * the servers with, over TLS; the servers refuse clients without TLS); answers GET /health with 200 when
 * it can serve.
 *
 *   GET  /               which web server answered, a visit recorded on the primary, visits read locally
 *   POST /api/notes      body = note text; stored on the primary; answers {id}
 *   GET  /api/notes/:id  the note as the local database has it (404 until it has replicated)
 *   GET  /health         200 only when the local database answers
 */
const fs = require('fs');
const http = require('http');
const os = require('os');
const mysql = require('mysql');

function required(name) {
  const v = process.env[name];
  if (!v) throw new Error(`environment variable ${name} is not set (docs/deploy.md: the contract)`);
  return v;
}

const config = {
  listen: { host: process.env.HOST || '127.0.0.1', port: Number(required('PORT')) },
  db: {
    database: required('DB_NAME'),
    user: required('DB_USER'),
    password: required('DB_PASSWORD'),
    write: { host: required('DB_WRITE_HOST'), port: Number(process.env.DB_PORT || 3306) },
    read: { host: required('DB_READ_HOST'), port: Number(process.env.DB_PORT || 3306) },
    // TLS to the database, the server's certificate checked against the internal CA (never accepted unverified).
    // This package (Debian's node-mysql) checks the chain, not the name; through the endpoint (127.0.0.2/.3) any
    // database server may answer. A client that checks names checks db.<inventory>.internal, which every
    // database certificate carries (docs/database.md, "What is verified where").
    // Read once at start: a new CA bundle restarts the app (the role's handler).
    ssl: process.env.DB_SSL_CA ? { ca: fs.readFileSync(process.env.DB_SSL_CA, 'utf8'), rejectUnauthorized: true } : undefined,
  },
};
const hostname = os.hostname();
const MAX_BODY = 64 * 1024;

function pool(db) {
  return mysql.createPool({
    host: db.host,
    port: db.port,
    user: config.db.user,
    password: config.db.password,
    database: config.db.database,
    connectionLimit: 4,
    connectTimeout: 5000,
    acquireTimeout: 5000,
    charset: 'utf8mb4',
    dateStrings: true,
    ...(config.db.ssl ? { ssl: config.db.ssl } : {}),
  });
}

const writer = pool(config.db.write);
const reader = pool(config.db.read);

function query(p, sql, args) {
  return new Promise((resolve, reject) => p.query({ sql, timeout: 5000 }, args || [], (err, rows) => (err ? reject(err) : resolve(rows))));
}

function send(res, status, body) {
  const text = JSON.stringify(body) + '\n';
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text), 'cache-control': 'no-store' });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let size = 0;
    const chunks = [];
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(Object.assign(new Error('body too large'), { status: 413 }));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** A note's text: the raw body, or {"body": "..."} when sent as JSON. */
function noteText(req, raw) {
  if (/^application\/json/.test(req.headers['content-type'] || '')) {
    const parsed = JSON.parse(raw);
    return typeof parsed === 'string' ? parsed : String(parsed.body ?? '');
  }
  return raw;
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const where = { host: hostname, write_host: config.db.write.host, read_host: config.db.read.host };

  if (req.method === 'GET' && url.pathname === '/health') {
    try {
      await query(reader, 'SELECT 1');
      return send(res, 200, { status: 'ok', ...where });
    } catch (err) {
      return send(res, 503, { status: 'database unavailable', error: err.code || err.message, ...where });
    }
  }

  if (req.method === 'GET' && url.pathname === '/') {
    const out = { ...where };
    try {
      const r = await query(writer, 'INSERT INTO visits (host) VALUES (?)', [hostname]);
      out.visit_id = r.insertId;
    } catch (err) {
      out.write_error = err.code || err.message;
    }
    try {
      const rows = await query(reader, 'SELECT COUNT(*) AS n FROM visits');
      out.visits = rows[0].n;
    } catch (err) {
      out.read_error = err.code || err.message;
    }
    return send(res, out.write_error || out.read_error ? 503 : 200, out);
  }

  if (req.method === 'POST' && url.pathname === '/api/notes') {
    const text = noteText(req, await readBody(req));
    if (!text) return send(res, 400, { error: 'empty note', ...where });
    const r = await query(writer, 'INSERT INTO notes (body, host) VALUES (?, ?)', [text, hostname]);
    return send(res, 201, { id: r.insertId, ...where });
  }

  const m = /^\/api\/notes\/(\d+)$/.exec(url.pathname);
  if (req.method === 'GET' && m) {
    const rows = await query(reader, 'SELECT id, body, host AS written_by, created_at FROM notes WHERE id = ?', [Number(m[1])]);
    if (rows.length === 0) return send(res, 404, { error: 'no such note (yet)', id: Number(m[1]), ...where });
    return send(res, 200, { ...rows[0], ...where });
  }

  return send(res, 404, { error: 'not found', ...where });
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    if (!res.headersSent) send(res, err.status || (err instanceof SyntaxError ? 400 : 500), { error: err.status || err instanceof SyntaxError ? err.message : 'internal error', host: hostname });
    if (!err.status && !(err instanceof SyntaxError)) console.error(`${req.method} ${req.url}: ${err.stack || err}`);
  });
});

server.listen(config.listen.port, config.listen.host, () => {
  console.log(`app listening on ${config.listen.host}:${config.listen.port} (writes: ${config.db.write.host}, reads: ${config.db.read.host})`);
});

function shutdown() {
  server.close(() => {
    writer.end();
    reader.end();
  });
  setTimeout(() => process.exit(0), 5000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
