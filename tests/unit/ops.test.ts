// The deployment files in ops/ cannot be run here (no Docker, no Kubernetes): this checks what
// can be checked without them. Every YAML and JSON file parses, the manifests probe the paths
// the node serves, the variables they set are ones the code reads, and every metric the
// Grafana dashboard queries is one the node's registry defines.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { program } from '../../cluster/cli.js';
import { NodeMetrics } from '../../cluster/metrics/index.js';

const root = new URL('../../', import.meta.url).pathname;
const ops = join(root, 'ops');

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
  );
}

function parseYaml(text: string, origin: string): unknown[] {
  // Compose files use YAML 1.1 merge keys (`<<: *node`).
  const docs = parseAllDocuments(text, { merge: true });
  for (const doc of docs) {
    if (doc.errors.length > 0) throw new Error(`${origin}: ${doc.errors[0]?.message}`);
  }
  return docs.map((d) => d.toJS());
}

function yamlDocs(path: string): unknown[] {
  return parseYaml(readFileSync(path, 'utf8'), relative(root, path));
}

function hasKubectl(): boolean {
  try {
    execFileSync('kubectl', ['version', '--client'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const yamlFiles = files(ops).filter((f) => /\.ya?ml$/.test(f));
const jsonFiles = files(ops).filter((f) => f.endsWith('.json'));

// prom-client names a histogram's series <name>_bucket, _sum and _count.
function baseName(series: string): string {
  return series.replace(/_(bucket|sum|count)$/, '');
}

describe('ops/', () => {
  it('has the compose file, the Kubernetes manifests and the dashboard', () => {
    const names = files(ops).map((f) => relative(ops, f));
    expect(names).toEqual(
      expect.arrayContaining([
        'Dockerfile',
        'compose.yaml',
        'k8s/deployment.yaml',
        'k8s/service.yaml',
        'k8s/secret.yaml',
        'k8s/configmap.yaml',
        'k8s/migrate-job.yaml',
        'grafana/dashboards/pgtrickle.json',
      ]),
    );
  });

  it.each(yamlFiles.map((f) => [relative(root, f), f]))('%s parses as YAML', (_name, path) => {
    expect(yamlDocs(path).length).toBeGreaterThan(0);
  });

  it.each(jsonFiles.map((f) => [relative(root, f), f]))('%s parses as JSON', (_name, path) => {
    expect(() => JSON.parse(readFileSync(path, 'utf8'))).not.toThrow();
  });

  it('probes /healthz for liveness and /readyz for readiness on the metrics port', () => {
    interface Container {
      livenessProbe: { httpGet: unknown };
      readinessProbe: { httpGet: unknown };
      ports: unknown;
      envFrom: unknown;
    }
    const [deployment] = yamlDocs(join(ops, 'k8s/deployment.yaml')) as {
      spec: { template: { spec: { containers: Container[] } } };
    }[];
    const container = deployment?.spec.template.spec.containers[0];
    expect(container?.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'metrics' });
    expect(container?.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(container?.ports).toEqual([{ name: 'metrics', containerPort: 9187 }]);
    expect(container?.envFrom).toEqual([
      { configMapRef: { name: 'pgtrickle-node' } },
      { secretRef: { name: 'pgtrickle-database' } },
    ]);
  });

  // Offline: kustomize resolves the file list and labels without a cluster.
  it.skipIf(!hasKubectl())('renders with kubectl kustomize into the five objects', () => {
    const rendered = execFileSync('kubectl', ['kustomize', join(ops, 'k8s')], { encoding: 'utf8' });
    const kinds = parseYaml(rendered, 'kubectl kustomize ops/k8s').map((d) => (d as { kind: string }).kind);
    expect(kinds.sort()).toEqual(['ConfigMap', 'Deployment', 'PodDisruptionBudget', 'Secret', 'Service']);
  });

  it('runs only commands and options the CLI has', () => {
    const commands = new Map(program().commands.map((c) => [c.name(), c]));
    const compose = yamlDocs(join(ops, 'compose.yaml'))[0] as {
      services: Record<string, { image?: string; command?: string[] }>;
    };
    const k8s = ['deployment.yaml', 'migrate-job.yaml'].map(
      (f) =>
        yamlDocs(join(ops, 'k8s', f))[0] as {
          spec: { template: { spec: { containers: { image: string; args: string[] }[] } } };
        },
    );
    // The containers of the pgtrickle image: its entrypoint is the CLI, their arguments a command.
    const invocations = [
      ...Object.values(compose.services).flatMap((s) =>
        s.image?.startsWith('pgtrickle:') ? [s.command ?? []] : [],
      ),
      ...k8s.flatMap((d) =>
        d.spec.template.spec.containers.filter((c) => c.image.startsWith('pgtrickle:')).map((c) => c.args),
      ),
    ];
    expect(invocations).toHaveLength(5);
    for (const [name, ...args] of invocations) {
      const command = commands.get(name ?? '');
      expect(command, `pgtrickle ${name}`).toBeDefined();
      const flags = new Set(command?.options.map((o) => o.long));
      for (const arg of args.filter((a) => a.startsWith('--')))
        expect(flags, `${name} ${arg}`).toContain(arg);
    }
  });

  it('sets only PGTRICKLE_ variables the code reads', () => {
    const source = ['cluster', 'shared', 'sql']
      .flatMap((d) => files(join(root, d)))
      .filter((f) => f.endsWith('.ts'))
      .map((f) => readFileSync(f, 'utf8'))
      .join('\n');
    const read = new Set(source.match(/PGTRICKLE_[A-Z_]+/g));
    const set = [...yamlFiles, join(ops, 'Dockerfile')]
      .flatMap((f) => readFileSync(f, 'utf8').match(/PGTRICKLE_[A-Z_]+/g) ?? [])
      .filter((v, i, all) => all.indexOf(v) === i);
    expect(set.length).toBeGreaterThan(3);
    expect(set.filter((v) => !read.has(v))).toEqual([]);
  });

  it('queries in the Grafana dashboard only metrics the node registry defines', () => {
    const defined = new Set(new NodeMetrics().registry.getMetricsAsArray().map((m) => m.name));
    const dashboard = JSON.parse(readFileSync(join(ops, 'grafana/dashboards/pgtrickle.json'), 'utf8')) as {
      panels: { title: string; targets: { expr: string }[] }[];
      templating: { list: { definition?: string }[] };
    };
    const exprs = [
      ...dashboard.panels.flatMap((p) => p.targets.map((t) => t.expr)),
      ...dashboard.templating.list.flatMap((v) => (v.definition ? [v.definition] : [])),
    ];
    expect(exprs.length).toBeGreaterThan(10);
    const used = new Set(exprs.flatMap((e) => e.match(/\bpgtrickle_[a-z0-9_]+/g) ?? []).map(baseName));
    expect([...used].filter((m) => !defined.has(m))).toEqual([]);
    // Every series the node defines for refreshes appears on the dashboard.
    const own = [...defined].filter((m) => !/^pgtrickle_(process|nodejs)_/.test(m));
    expect(own.filter((m) => !used.has(m))).toEqual([]);
  });
});
