// The generators' command-line options (gen-cur.mjs, gen-parquet.mjs): "--name value" or
// "--name=value", each described in a table:
//   { t: 'str' | 'int' | 'bool', d: default (absent: none), min: 1 for positive integers
//     (else non-negative), one: [the values allowed] }
// A bool option alone is true; "--name=false" (0, no) is false. Errors name the option and show
// the usage.
export function parseOptions(argv, opts, usage) {
  const o = {};
  for (const [k, s] of Object.entries(opts)) if ('d' in s) o[k] = s.d;
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"\n${usage}`);
    a = a.slice(2);
    let v;
    const eq = a.indexOf('=');
    if (eq >= 0) { v = a.slice(eq + 1); a = a.slice(0, eq); }
    const spec = opts[a];
    if (!spec) throw new Error(`unknown option --${a}\n${usage}`);
    if (spec.t === 'bool') { o[a] = v === undefined ? true : !/^(0|false|no)$/i.test(v); continue; }
    if (v === undefined) {
      if (i + 1 >= argv.length) throw new Error(`option --${a} needs a value`);
      v = argv[++i];
    }
    if (spec.t === 'int') {
      if (spec.min === 1 ? !/^[1-9]\d*$/.test(v) : !/^\d+$/.test(v))
        throw new Error(`option --${a} expects a ${spec.min === 1 ? 'positive' : 'non-negative'} integer, got "${v}"`);
      o[a] = Number(v);
    } else {
      if (spec.one && !spec.one.includes(v)) throw new Error(`option --${a} expects one of ${spec.one.join('|')}, got "${v}"`);
      o[a] = v;
    }
  }
  return o;
}
