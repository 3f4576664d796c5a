/* xdplab-c-cells: a JupyterLab 4 prebuilt ("federated") extension written by hand, so the
 * lab needs no node build. JupyterLab loads this script, calls init(shareScope) with its
 * shared modules and get("./extension") for the plugin. The plugin wraps the "ipython"
 * language of the editor registry: a cell whose first line is %%xdp is parsed as C below
 * that line (lezer parseMixed overlay), so it is highlighted and indented as C. */
var _JUPYTERLAB;
(function () {
  "use strict";
  _JUPYTERLAB = _JUPYTERLAB || {};
  var scope = null;

  function newest(versions) {
    return Object.keys(versions).sort(function (a, b) {
      var x = a.split(/[.-]/).map(Number), y = b.split(/[.-]/).map(Number);
      for (var i = 0; i < Math.max(x.length, y.length); i++) {
        if ((x[i] || 0) !== (y[i] || 0)) return (y[i] || 0) - (x[i] || 0);
      }
      return 0;
    })[0];
  }

  function shared(name) {
    var versions = scope && scope[name];
    if (!versions) return Promise.reject(new Error("xdplab-c-cells: JupyterLab does not share " + name));
    var entry = versions[newest(versions)];
    entry.loaded = 1;
    return Promise.resolve(entry.get()).then(function (factory) { return factory(); });
  }

  var MAGIC = /^\s*%%xdp\b/;

  function wrap(registry, spec, c, lezer, language) {
    var load = spec.load.bind(spec);
    spec.support = undefined;
    spec.load = function () {
      return Promise.all([load(), registry.getLanguage(c)]).then(function (r) {
        var py = r[0], clang = r[1] && r[1].support;
        if (!clang) return py;
        var cParser = clang.language.parser;
        var mixed = py.language.configure({
          wrap: lezer.parseMixed(function (node, input) {
            if (!node.type.isTop) return null;
            var head = input.read(0, Math.min(input.length, 400));
            if (!MAGIC.test(head)) return null;
            var nl = head.indexOf("\n");
            if (nl < 0 || nl + 1 >= input.length) return null;
            return { parser: cParser, overlay: [{ from: nl + 1, to: input.length }] };
          })
        }, spec.name);
        return new language.LanguageSupport(mixed, [py.support, clang.support]);
      });
    };
  }

  function plugin(cm, lezer, language) {
    return {
      id: "xdplab-c-cells:plugin",
      description: "C highlighting and indentation in %%xdp cells",
      autoStart: true,
      requires: [cm.IEditorLanguageRegistry],
      activate: function (app, registry) {
        var c = registry.findByName("C") || registry.findByMIME("text/x-csrc");
        if (!c) { console.warn("xdplab-c-cells: the editor has no C language"); return; }
        // a notebook's cells are "python" until its kernel reports "ipython": wrap both
        ["ipython", "python"].forEach(function (name) {
          var spec = registry.findByName(name);
          if (spec) wrap(registry, spec, c, lezer, language);
        });
      }
    };
  }

  _JUPYTERLAB["xdplab-c-cells"] = {
    init: function (shareScope) { scope = shareScope; },
    get: function (module) {
      if (module !== "./extension" && module !== "./index") {
        return Promise.reject(new Error("xdplab-c-cells has no module " + module));
      }
      return Promise.all([shared("@jupyterlab/codemirror"), shared("@lezer/common"),
                          shared("@codemirror/language")]).then(function (m) {
        var p = plugin(m[0], m[1], m[2]);
        return function () { return { __esModule: true, default: [p] }; };
      });
    }
  };
})();
