# The cross-checks of publisher/validate.ts with the same "path: message" texts, in two parts like there:
# `crossCheck input` relates the well-typed parts of any input (also one that failed schema.nix: see
# `wellTyped` for what each check needs), `resolutionCheck fleet` needs a fleet that passed the schema.
# Both return lists of errors (empty = valid). Warnings (empty waves, unused policies, tags no host has)
# are left to the TypeScript validator, which prints them at publish time.
let
  inherit (builtins) attrNames attrValues filter length elemAt genList concatLists concatStringsSep sort groupBy hasAttr elem listToAttrs foldl' head tail isAttrs isList;
  hostKey = import ./host-key.nix;
  graph = import ./graph.nix;
  waves = import ./waves.nix;
  schema = import ./schema.nix;
  suggest = import ./suggest.nix;
  err = path: message: "${path}: ${message}";
  indexed = list: genList (i: { inherit i; v = elemAt list i; }) (length list);
  unique = list: foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ] list;

  # Each host sharing a value names the first other host (in name order) that has it. The TypeScript
  # validator names only the first host in JSON order, which Nix cannot see (fromJSON and attribute
  # sets sort names); reporting both directions keeps its line among ours whenever two hosts collide.
  duplicates = names: valueOf: path: what:
    let groups = groupBy (n: builtins.unsafeDiscardStringContext (valueOf n)) names; in
    concatLists (map (v:
      let g = groups.${v}; in
      if length g < 2 then [ ]
      else map (n: err (path n) "the same ${what} is used by hosts.${head (filter (o: o != n) g)}") g) (attrNames groups));

  # ---- The well-typed parts (validate.ts wellTyped, the same rules) ----
  # One field's value when it passes its own check (defaults applied; an absent optional field is null):
  # { value; }, or null when the field is broken or the object is not one.
  typed = fields: raw: key:
    let spec = fields.${key}; in
    if !(isAttrs raw) then null
    else if hasAttr key raw then (let r = spec.check "" raw.${key}; in if r.errors == [ ] then { inherit (r) value; } else null)
    else if spec ? default then { value = spec.default; }
    else if spec.optional or false then { value = null; }
    else null;
  val = t: if t == null then null else t.value;
  isRecord = v: isAttrs v && !(v ? type && v.type == "derivation");
  # The elements of a list field; absent (its default) or not a list: none.
  elements = raw: key: let v = if isAttrs raw then raw.${key} or null else null; in if isList v then v else [ ];
  # A record field's entries under their valid names (parts applied), or null when it is not an object.
  declared = raw: key: parts:
    let entries = if isAttrs raw then raw.${key} or null else null; in
    if !(isRecord entries) then null
    else listToAttrs (map (n: { name = n; value = parts entries.${n}; }) (filter (n: (schema.name "" n).errors == [ ]) (attrNames entries)));

  wellTyped = input:
    let
      f = schema.fields;
      edges = key: genList (i: let e = elemAt (elements input key) i; in { inherit i; before = val (typed f.edge e "before"); after = val (typed f.edge e "after"); }) (length (elements input key));
      hostsRaw = if isAttrs input then input.hosts or null else null;
      revoked = if isAttrs input then input.revoked or { } else { };
    in
    {
      hosts = declared input "hosts" (h: {
        channel = val (typed f.host h "channel");
        target = val (typed f.host h "target");
        hostKey = val (typed f.host h "hostKey");
        machineId = val (typed f.host h "machineId");
      });
      noHosts = isRecord hostsRaw && attrNames hostsRaw == [ ];
      channels = declared input "channels" (c: {
        policy = val (typed f.channel c "policy");
        freshnessSeconds = val (typed f.channel c "freshnessSeconds");
        signingIntervalSeconds = val (typed f.channel c "signingIntervalSeconds");
        reboot = val (typed f.channel c "reboot");
        maintenanceWindows = val (typed f.channel c "maintenanceWindows");
        compliance = val (typed f.channel c "compliance");
      });
      # Declared compliance frameworks (absent field: none), with their control kinds when well-typed.
      frameworks =
        let raw = if isAttrs input then input.complianceFrameworks or { } else null; in
        if !(isRecord raw) then null
        else listToAttrs (map (n:
          let whole = schema.complianceFramework "" raw.${n}; in
          { name = n; value = { kinds = if whole.errors == [ ] then map (c: c.kind) (attrValues whole.value.controls) else null; }; })
          (filter (n: (schema.complianceId "" n).errors == [ ]) (attrNames raw)));
      policies = declared input "policies" (p:
        let whole = schema.policy "" p; ws = elements p "waves"; in {
          policy = if whole.errors == [ ] then whole.value else null;
          selectors = filter (s: s.selector != null) (genList (i: { inherit i; selector = val (typed f.wave (elemAt ws i) "selector"); }) (length ws));
        });
      hostEdges = edges "hostEdges";
      channelEdges = edges "channelEdges";
      budgets = let bs = elements input "disruptionBudgets"; in genList (i:
        let
          b = elemAt bs i;
          max = typed f.budget b "maxInFlight";
          pct = typed f.budget b "maxInFlightPct";
        in
        {
          inherit i;
          id = val (typed f.budget b "id");
          selector = val (typed f.budget b "selector");
          limits = if max != null && pct != null then { maxInFlight = max.value; maxInFlightPct = pct.value; } else null;
        }) (length bs);
      revokedClosures = listToAttrs (map (p: { name = builtins.unsafeDiscardStringContext p; value = true; })
        (filter (p: p != null) (map (c: val (typed f.revokedClosure c "storePath")) (elements revoked "closures"))));
    };

  # ---- Cross-checks ----
  unknown = what: name: known: ''unknown ${what} "${name}"${suggest.didYouMean name (attrNames known)}'';

  checkHosts = parts:
    let
      hosts = if parts.hosts == null then { } else parts.hosts;
      names = attrNames hosts;
      withKey = filter (n: hosts.${n}.hostKey != null && (hostKey.parse hosts.${n}.hostKey).ok) names;
      withMachineId = filter (n: hosts.${n}.machineId != null) names;
    in
    (if parts.noHosts then [ (err "hosts" "the fleet has no hosts") ] else [ ])
    ++ concatLists (map (n:
      let h = hosts.${n}; in
      (if h.channel != null && parts.channels != null && !(hasAttr h.channel parts.channels) then [ (err "hosts.${n}.channel" (unknown "channel" h.channel parts.channels)) ] else [ ])
      ++ (if h.target != null && hasAttr (builtins.unsafeDiscardStringContext h.target) parts.revokedClosures then [ (err "hosts.${n}.target" "${h.target} is a revoked closure (revoked.closures)") ] else [ ])) names)
    ++ duplicates withKey (n: (hostKey.parse hosts.${n}.hostKey).raw) (n: "hosts.${n}.hostKey") "host key"
    ++ duplicates withMachineId (n: hosts.${n}.machineId) (n: "hosts.${n}.machineId") "machine id";

  checkChannelsAndPolicies = parts:
    let
      channels = if parts.channels == null then { } else parts.channels;
      policies = if parts.policies == null then { } else parts.policies;
    in
    concatLists (map (n:
      let ch = channels.${n}; in
      (if ch.policy != null && parts.policies != null && !(hasAttr ch.policy parts.policies) then [ (err "channels.${n}.policy" (unknown "policy" ch.policy parts.policies)) ] else [ ])
      ++ (if ch.freshnessSeconds != null && ch.signingIntervalSeconds != null && ch.freshnessSeconds < 2 * ch.signingIntervalSeconds then
        [ (err "channels.${n}.freshnessSeconds" "${toString ch.freshnessSeconds} is less than 2 x signingIntervalSeconds (${toString ch.signingIntervalSeconds}): one late re-sign would make every host stale") ]
      else [ ])
      # Without windows the maintenance gate is always open: the policy would silently mean "allowed".
      ++ (if ch.reboot == "in-maintenance-window" && ch.maintenanceWindows == [ ] then
        [ (err "channels.${n}.reboot" ''in-maintenance-window needs at least one entry in maintenanceWindows (write "allowed" to reboot at any time)'') ]
      else [ ])) (attrNames channels))
    ++ concatLists (map (n:
      let
        p = policies.${n}.policy;
        ws = p.waves;
        count = length ws;
        path = "policies.${n}.waves";
        shape =
          if p.strategy == "all-at-once" then
            (if count > 1 then [ (err path "strategy all-at-once has exactly one wave, got ${toString count}") ] else [ ])
            ++ (if count > 0 && waves.membershipOf (head ws) != "remainder" then [ (err "${path}[0]" "strategy all-at-once takes every host: remove selector/count/percent") ] else [ ])
          else if count == 0 then [ (err path "strategy ${p.strategy} needs at least one wave") ]
          else [ ];
        canary =
          if p.strategy != "canary" then [ ]
          else if count < 2 then [ (err path "strategy canary needs a first small wave and at least one more") ]
          else if waves.membershipOf (head ws) == "remainder" then [ (err "${path}[0]" "the canary wave needs a selector, count or percent") ]
          else [ ];
        perWave = concatLists (map ({ i, v }:
          let given = filter (k: hasAttr k v) [ "selector" "count" "percent" ]; in
          (if length given > 1 then [ (err "${path}[${toString i}]" "give at most one of selector, count, percent (got ${concatStringsSep ", " given})") ] else [ ])
          ++ (if waves.membershipOf v == "remainder" && i != count - 1 then [ (err "${path}[${toString i}]" "a wave without selector, count or percent takes the remainder and must be the last wave") ] else [ ]))
          (indexed ws));
      in
      if p == null then [ ] else shape ++ canary ++ perWave) (attrNames policies));

  selectorRefs = sel:
    if sel ? tags || sel ? tagsAny || sel ? all then { hosts = [ ]; channels = [ ]; }
    else if sel ? hosts then { hosts = sel.hosts; channels = [ ]; }
    else if sel ? channel then { hosts = [ ]; channels = [ sel.channel ]; }
    else
      let parts = map selectorRefs (if sel ? and then sel.and else [ sel.not ]); in
      { hosts = concatLists (map (p: p.hosts) parts); channels = concatLists (map (p: p.channels) parts); };

  checkSelector = parts: path: sel:
    let refs = selectorRefs sel; in
    (if parts.hosts == null then [ ] else map (h: err path (unknown "host" h parts.hosts)) (filter (h: !(hasAttr h parts.hosts)) (unique refs.hosts)))
    ++ (if parts.channels == null then [ ] else map (c: err path (unknown "channel" c parts.channels)) (filter (c: !(hasAttr c parts.channels)) (unique refs.channels)));

  checkSelectors = parts:
    let policies = if parts.policies == null then { } else parts.policies; in
    concatLists (map (n: concatLists (map ({ i, selector }: checkSelector parts "policies.${n}.waves[${toString i}].selector" selector) policies.${n}.selectors)) (attrNames policies))
    ++ concatLists (map (b: if b.selector != null then checkSelector parts "disruptionBudgets[${toString b.i}].selector" b.selector else [ ]) parts.budgets);

  # The edges whose both endpoints are well-typed: a cycle among them is one whatever else is broken.
  wholeEdges = edges: map (e: { inherit (e) before after; }) (filter (e: e.before != null && e.after != null) edges);

  checkEdges = parts:
    let
      hosts = parts.hosts;
      channels = parts.channels;
      hostOf = n: if n == null || hosts == null then null else hosts.${n} or null;
      knownChannel = c: c != null && channels != null && hasAttr c channels;
    in
    concatLists (map (e:
      let
        path = "hostEdges[${toString e.i}]";
        a = hostOf e.before;
        b = hostOf e.after;
      in
      (if hosts != null && e.before != null && a == null then [ (err "${path}.before" (unknown "host" e.before hosts)) ] else [ ])
      ++ (if hosts != null && e.after != null && b == null then [ (err "${path}.after" (unknown "host" e.after hosts)) ] else [ ])
      # Only between declared channels: a host in an unknown channel is already reported as such.
      ++ (if a != null && b != null && a.channel != b.channel && knownChannel a.channel && knownChannel b.channel then
        [ (err path "host edges stay within a channel: ${e.before} is in channel ${a.channel}, ${e.after} in ${b.channel} (use a channel edge)") ]
      else [ ])) parts.hostEdges)
    ++ map (cycle: err "hostEdges" "cycle ${graph.describeCycle cycle}") (graph.findCycles (wholeEdges parts.hostEdges))
    ++ concatLists (map (e:
      (if channels != null && e.before != null && !(hasAttr e.before channels) then [ (err "channelEdges[${toString e.i}].before" (unknown "channel" e.before channels)) ] else [ ])
      ++ (if channels != null && e.after != null && !(hasAttr e.after channels) then [ (err "channelEdges[${toString e.i}].after" (unknown "channel" e.after channels)) ] else [ ]))
      parts.channelEdges)
    ++ map (cycle: err "channelEdges" "cycle ${graph.describeCycle cycle}") (graph.findCycles (wholeEdges parts.channelEdges));

  checkBudgets = parts:
    let
      typedIds = filter (b: b.id != null) parts.budgets;
      # The first budget (in list order) with each id (listToAttrs keeps the first of equal names).
      firstWith = listToAttrs (map (b: { name = b.id; value = b.i; }) typedIds);
    in
    concatLists (map (b:
      let path = "disruptionBudgets[${toString b.i}]"; l = b.limits; in
      (if b.id != null && firstWith.${b.id} != b.i then [ (err "${path}.id" ''duplicate budget id "${b.id}"'') ] else [ ])
      ++ (if l == null then [ ]
        else (if (l.maxInFlight == null) == (l.maxInFlightPct == null) then [ (err path "give exactly one of maxInFlight, maxInFlightPct") ] else [ ])
        ++ (if l.maxInFlight == 0 then [ (err "${path}.maxInFlight" "can never be satisfied: 0 lets no host start") ] else [ ])
        ++ (if l.maxInFlightPct == 0 then [ (err "${path}.maxInFlightPct" "can never be satisfied: 0% lets no host start (use 1-100)") ] else [ ])))
      parts.budgets);

  # compliance.ts checkComplianceReferences: each framework a channel names exists, once; they fit a manifest.
  checkCompliance = parts:
    let channels = if parts.channels == null then { } else parts.channels; in
    if parts.frameworks == null then [ ]
    else concatLists (map (n:
      let
        spec = channels.${n}.compliance;
        names = spec.frameworks;
        known = filter (f: hasAttr f parts.frameworks) (unique names);
        kinds = concatLists (map (f: let k = parts.frameworks.${f}.kinds; in if k == null then [ ] else k) known);
        count = kind: length (filter (k: k == kind) kinds);
        path = "channels.${n}.compliance";
      in
      if spec == null then [ ]
      else concatLists (map ({ i, v }:
        let p = "${path}.frameworks[${toString i}]"; in
        if elem v (genList (elemAt names) i) then [ (err p ''duplicate framework "${v}"'') ]
        else if !(hasAttr v parts.frameworks) then [ (err p ''unknown framework "${v}"${suggest.didYouMean v (attrNames parts.frameworks)}'') ]
        else [ ]) (indexed names))
      ++ (if count "runtime" > 32 then [ (err path "its frameworks have ${toString (count "runtime")} runtime controls, a host manifest holds at most 32") ] else [ ])
      ++ (if count "static" > 256 then [ (err path "its frameworks have ${toString (count "static")} static controls, a host manifest holds at most 256") ] else [ ]))
      (attrNames channels));

  # compliance.ts evaluateStatic: a fact absent or null is "not set" and fails every expectation.
  clipEvidence = t: if builtins.stringLength t <= 256 then t else builtins.substring 0 253 t + "...";
  evaluateStatic = fact: expect: facts:
    let
      value = if facts == null then null else facts.${fact} or null;
      set = value != null;
      shown = builtins.toJSON;
      ok =
        if !set then false
        else if expect ? equals then shown value == shown expect.equals
        else if expect ? oneOf then builtins.any (v: shown v == shown value) expect.oneOf
        else true;
      expectation =
        if expect ? equals then shown expect.equals
        else if expect ? oneOf then "one of ${concatStringsSep ", " (map shown expect.oneOf)}"
        else "it to be set";
      found = if set then "${fact} = ${shown value}" else "${fact} is not set";
    in
    { inherit ok; evidence = clipEvidence (if ok then found else "${found} (expected ${expectation})"); };

  # compliance.ts checkStaticControls: enforce channels only (permissive failures are warnings, left to
  # the TypeScript validator like every warning).
  checkStaticControls = fleet:
    let frameworks = fleet.complianceFrameworks or { }; in
    concatLists (map (h:
      let
        host = fleet.hosts.${h};
        spec = fleet.channels.${host.channel}.compliance or null;
      in
      if spec == null || spec.mode != "enforce" then [ ]
      else concatLists (map (fw:
        let controls = frameworks.${fw}.controls; in
        concatLists (map (id:
          let
            ctl = controls.${id};
            r = evaluateStatic ctl.fact ctl.expect (host.facts or null);
          in
          if ctl.kind != "static" || r.ok then [ ]
          else [ (err "hosts.${h}" "fails compliance control ${fw}/${id} of channel ${host.channel} (enforce): ${r.evidence}") ])
          (attrNames controls))) spec.frameworks)) (attrNames fleet.hosts));

  # Needs the resolved waves: hosts no wave claims, and host edges that could only deadlock.
  checkResolution = fleet: resolved:
    let
      channelErrors = concatLists (map (n:
        let
          ch = resolved.channels.${n};
          size = foldl' (acc: w: acc + length w.hosts) 0 ch.waves + length ch.unassigned;
          shown = sort (a: b: a < b) ch.unassigned;
          count = length shown;
          list = concatStringsSep ", " (genList (elemAt shown) (if count > 10 then 10 else count))
            + (if count > 10 then ", ... (${toString count} in all)" else "");
        in
        if size == 0 || count == 0 then [ ]
        else [ (err "channels.${n}" ''hosts matched by no wave of policy "${ch.policy}": ${list} (rule: add a last wave without selector/count/percent to take the remainder)'') ])
        (attrNames resolved.channels));
      waveOf = listToAttrs (concatLists (map (ch: concatLists (map (w: map (h: { name = h; value = w.index; }) w.hosts) ch.waves)) (attrValues resolved.channels)));
      edgeErrors = concatLists (map ({ i, v }:
        let wb = waveOf.${v.before} or null; wa = waveOf.${v.after} or null; in
        if wb != null && wa != null && wb > wa then
          [ (err "hostEdges[${toString i}]" "can never be satisfied: ${v.after} (wave ${toString wa}) waits for ${v.before}, which is in the later wave ${toString wb}") ]
        else [ ]) (indexed fleet.hostEdges));
    in
    channelErrors ++ edgeErrors;
in
{
  # Every check that relates parts of the fleet, on whatever parts of `input` are well-typed.
  crossCheck = input:
    let parts = wellTyped input; in
    checkHosts parts ++ checkChannelsAndPolicies parts ++ checkSelectors parts ++ checkEdges parts ++ checkBudgets parts ++ checkCompliance parts;
  # Coverage and deadlocked edges: only for a fleet that passed the schema (count and percent waves
  # depend on every host of the channel).
  resolutionCheck = fleet: checkResolution fleet (waves.resolveFleet fleet);
  # Static controls of enforce channels: only for a fleet without any other violation (every reference resolves).
  inherit checkStaticControls;
}
