# nixosModules.workstation: everything a box runs, driven by workstation.toml.
#
# - supervisord (nixpkgs has no module for it) runs the configuration that
#   `workstation render supervisord` produced at build time, exactly what
#   `workstation up` would upload;
# - the data stores run under nixpkgs' own modules (redis, postgresql,
#   mongodb, opensearch, mysql) on loopback, at the manifest's ports;
# - first boot publishes the SSH host key as an EC2 tag (the laptop pins it);
# - a timer runs `workstation box idle-check` every minute;
# - with box.hibernate, it can hibernate and resume (hibernation.nix);
# - the owner's account and key come from instance metadata.
{ config, lib, pkgs, ... }:

let
  cfg = config.workstation;
  wslib = import ./lib.nix;
  manifest = wslib.readManifest cfg.manifest;
  ws = "${cfg.package}/bin/workstation";

  # The build-time configuration, named by its content hash like the ones
  # `workstation up` uploads.
  rendered = pkgs.runCommand "workstation-supervisord" { } ''
    mkdir -p $out
    WORKSTATION_MANIFEST=${cfg.manifest} ${ws} ${lib.escapeShellArgs wslib.renderArgs} --out $out 2> $TMPDIR/render.log
    sed -n 's/.*(configuration \([0-9a-f]*\)).*/\1/p' $TMPDIR/render.log > $out/.hash
    test -s $out/.hash
  '';

  one = kind: wslib.storesOfKind kind manifest;
  # Units that finish a store's setup after its server is up (see supervisord).
  setupUnits = lib.optional (has "postgres") "postgresql-setup.service";
  only = kind: builtins.head (builtins.attrValues (one kind));
  has = kind: one kind != { };
  # Client tools the seeders run on the box (stack/seed/); the servers come
  # with nixpkgs' modules below.
  storeTools = {
    redis = [ pkgs.redis ];
    postgres = [ cfg.postgresqlPackage ];
    mongodb = [ pkgs.mongosh pkgs.mongodb-tools ];
    opensearch = [ ];
    # The server package carries the client (mariadb) in the same output.
    mysql = [ pkgs.mariadb ];
    # Amazon SQS itself: nothing on the box.
    sqs = [ ];
  };
  kinds = wslib.storeKinds manifest;

  # Units that write to the data volume.
  dataUsers = [ "supervisord.service" "workstation-owner.service" ] ++ builtins.attrValues (wslib.storeUnits manifest);

  imds = ''
    token=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 300' http://169.254.169.254/latest/api/token)
    md() { curl -fsS -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"; }
  '';
in
{
  # box.hibernate's guest side.
  imports = [ ./hibernation.nix ];

  options.workstation = {
    manifest = lib.mkOption {
      type = lib.types.path;
      description = "The workstation.toml the box is built from.";
    };
    package = lib.mkOption {
      type = lib.types.package;
      description = "The workstation CLI (renders supervisord's configuration, runs the box-side checks).";
    };
    postgresqlPackage = lib.mkOption {
      type = lib.types.package;
      default = pkgs.postgresql_16;
      defaultText = lib.literalExpression "pkgs.postgresql_16";
      description = "PostgreSQL for postgres stores.";
    };
  };

  config = {
    # For the flake's check that the image bakes what `workstation render`
    # prints (system.build takes any attribute; nixos/modules/system/activation/top-level.nix).
    system.build.workstationSupervisord = rendered;

    environment.systemPackages =
      [ cfg.package pkgs.python3Packages.supervisor pkgs.rsync pkgs.curl pkgs.iproute2 pkgs.nftables pkgs.util-linux ]
      ++ lib.concatMap (k: storeTools.${k}) kinds
      # The front of services (stack/front.rs), run by supervisord's
      # ws-front: `pkgs.nginxStable`, the NixOS nginx module's default
      # package (nixos/modules/services/web-servers/nginx/default.nix,
      # `package`), installed as bin/nginx with only `--with-*` flags, so
      # nginx's default map and mirror modules are in
      # (pkgs/servers/http/nginx/generic.nix, `--sbin-path=bin/nginx`).
      # Its workers run as nobody:nogroup, which NixOS always defines
      # (nixos/modules/config/users-groups.nix). Read in 2024-25 copies:
      # the pinned revision is not stored whole.
      ++ lib.optional (wslib.fronted manifest) pkgs.nginxStable;

    environment.etc."workstation/workstation.toml".source = cfg.manifest;
    environment.etc."workstation/program-path".text = wslib.programPath;
    environment.etc."workstation/stores".text = wslib.storeRunner;

    assertions = map (kind: {
      assertion = builtins.length (builtins.attrNames (one kind)) <= 1;
      message = "workstation.toml: nixpkgs runs one ${kind} per box; declare one ${kind} store (redis may have several)";
    }) [ "postgres" "mongodb" "opensearch" "mysql" ];

    # Each redis store is its own server (unit redis-<store>), saving like
    # the supervised one (stack/stores.rs) so a stop/start keeps its data.
    services.redis.servers = builtins.mapAttrs (name: s: {
      enable = true;
      port = wslib.storePort s;
      bind = "127.0.0.1";
      databases = 16;
      save = [ [ 60 1000 ] ];
      appendOnly = false;
    }) (one "redis");

    # Loopback only; the seeders connect as postgres over TCP (stack/seed/),
    # which loopback trusts: the box is single-user and the port is not
    # reachable from outside.
    services.postgresql = lib.mkIf (has "postgres") {
      enable = true;
      package = cfg.postgresqlPackage;
      settings.port = wslib.storePort (only "postgres");
      settings.listen_addresses = lib.mkForce "127.0.0.1";
      authentication = lib.mkOverride 10 ''
        local all all peer
        host all all 127.0.0.1/32 trust
      '';
      ensureDatabases = lib.mapAttrsToList wslib.database (one "postgres");
    };

    # MariaDB (`pkgs.mariadb`, an alias of mariadb_114 in
    # pkgs/top-level/all-packages.nix; 11.4.12 in
    # pkgs/servers/sql/mariadb/default.nix of a 2026 nixpkgs, Swarsel/nixpkgs@4aa6836,
    # so its client has `--sandbox`, new in 11.4.2, which seeds load with), on loopback. The seeders and
    # services use `root@127.0.0.1` without a password, as loopback trust
    # does for postgres and as local boxes' mariadb-install-db makes it
    # (stack/stores.rs): nixpkgs' MariaDB root uses unix_socket only, so
    # `initialScript` adds that account. Per
    # nixos/modules/services/databases/mysql.nix: `package` has no
    # default; port and bind address are `settings.mysqld` keys (the old
    # `port`/`bind` options are removed), written by pkgs.formats.ini, so
    # ints and strings are written as they are; `ensureDatabases` runs in
    # mysql.service's postStart; `initialScript` runs once, when the data
    # directory is first made, as the module's super user (`mysql`). The
    # package is built with local-infile off, so it is turned on here (CSV
    # seeds use LOAD DATA LOCAL). Read in Swarsel/nixpkgs@4aa6836 (2026):
    # the pinned revision is not readable through the search tool.
    services.mysql = lib.mkIf (has "mysql") {
      enable = true;
      package = pkgs.mariadb;
      settings.mysqld = {
        port = wslib.storePort (only "mysql");
        bind-address = "127.0.0.1";
        skip-name-resolve = 1;
        local-infile = 1;
        character-set-server = "utf8mb4";
        collation-server = "utf8mb4_unicode_ci";
        max-allowed-packet = "256M";
      };
      ensureDatabases = lib.mapAttrsToList wslib.database (one "mysql");
      # writeText: pkgs/build-support/trivial-builders/default.nix.
      initialScript = pkgs.writeText "workstation-mysql-init.sql" ''
        CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
        GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
      '';
    };

    # MongoDB's community server is SSPL-licensed, which nixpkgs counts as
    # unfree: allow that one package, nothing else. A plain function, not
    # `lib.mkIf`: nixpkgs.config has its own merge (nixos/modules/misc/nixpkgs.nix,
    # configType) that does not resolve a mkIf nested inside it.
    nixpkgs.config.allowUnfreePredicate = pkg: has "mongodb" && builtins.elem (lib.getName pkg) [ "mongodb-ce" ];

    services.mongodb = lib.mkIf (has "mongodb") {
      enable = true;
      package = pkgs.mongodb-ce;
      bind_ip = "127.0.0.1";
      extraConfig = "net.port: ${toString (wslib.storePort (only "mongodb"))}";
    };

    # Its data on the data volume directly: a dataDir of our own also turns
    # off the module's DynamicUser, so the user is declared here, as the
    # module asks (nixos/modules/services/search/opensearch.nix).
    services.opensearch = lib.mkIf (has "opensearch") {
      enable = true;
      dataDir = "${wslib.root}/stores/opensearch";
      settings."http.port" = wslib.storePort (only "opensearch");
      settings."network.host" = "127.0.0.1";
    };

    users.users.opensearch = lib.mkIf (has "opensearch") { isSystemUser = true; group = "opensearch"; };
    users.groups.opensearch = lib.mkIf (has "opensearch") { };

    systemd.tmpfiles.rules = [
      "d ${wslib.root} 0755 root root -"
      "d ${wslib.root}/supervisor 0755 root root -"
      "d ${wslib.root}/run 0755 root root -"
      "d ${wslib.root}/logs 0755 root root -"
      "d ${wslib.root}/seeds 0700 root root -"
    ];

    # The data volume (`box.data_gib`, attached at /dev/sdf by `workstation
    # create`): formatted on first use, mounted at the box root. On Nitro
    # instances the disk is an NVMe device; amazon-image.nix's udev rules
    # (amazon-ec2-utils) give it the /dev/sdf name it was attached as. A
    # kept volume is attached after the instance runs, so boot does not
    # wait for it (nofail); everything that writes data does (below).
    # nixos/modules/tasks/filesystems.nix: device, fsType, autoFormat, options.
    fileSystems.${wslib.root} = {
      device = wslib.dataDevice;
      fsType = "ext4";
      autoFormat = true;
      # A kept volume may be attached long after boot (a `create` re-run
      # after an interruption): wait for it however long it takes.
      options = [ "nofail" "x-systemd.device-timeout=infinity" ];
    };

    # Home and the stores' directories live on the data volume: bind mounts
    # of directories there, made (and given to their users, whose ids a new
    # root may number differently) before anything that uses them starts.
    # tmpfiles ran before the volume was mounted, so its directories are
    # made again here. Where each store keeps its data, and as whom
    # (images/lib.nix dataBinds), per nixpkgs: redis.nix (StateDirectory
    # redis-<name>, user redis-<name>), postgresql.nix (dataDir below
    # /var/lib/postgresql, uid 71 in misc/ids.nix), mongodb.nix (dbpath
    # /var/db/mongodb, user mongodb); requiredBy, before and unitConfig in
    # nixos/lib/systemd-unit-options.nix; mysql.nix (dataDir /var/lib/mysql,
    # user mysql).
    systemd.services.workstation-data = {
      description = "Put home and the stores' data on the data volume";
      wantedBy = [ "multi-user.target" ];
      # Without their data, these do not start (rather than write to the
      # root an upgrade throws away).
      requiredBy = dataUsers;
      before = dataUsers;
      unitConfig.RequiresMountsFor = [ wslib.root ];
      path = [ pkgs.coreutils pkgs.util-linux ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
      };
      script = ''
        install -d -m 0755 ${wslib.root}/supervisor ${wslib.root}/run ${wslib.root}/logs ${wslib.root}/stores
        install -d -m 0700 ${wslib.root}/seeds
      '' + lib.concatMapStrings (b: ''
        install -d -m 0755 ${b.source}
        [ "$(stat -c %U ${b.source})" = ${b.user} ] || chown -R ${b.user}:${b.user} ${b.source}
      '' + lib.optionalString (b.target != null) ''
        install -d -m 0755 ${b.target}
        mountpoint -q ${b.target} || mount --bind ${b.source} ${b.target}
      '') (wslib.dataBinds manifest) + ''
        # `workstation upgrade` replaces the root only when this says the
        # data is on the volume (provisioner/src/provider/data.rs MARKER).
        mountpoint -q ${wslib.root} && touch ${wslib.root}/.data-volume
      '';
    };

    # supervisord in the foreground under systemd. The build-time
    # configuration is installed the way `workstation up` installs one
    # (supervisor/<hash>, `current` symlink), only when the box has none:
    # a configuration applied later by `workstation up` survives reboots.
    systemd.services.supervisord = {
      description = "workstation services (supervisord)";
      wantedBy = [ "multi-user.target" ];
      # Services start after the stores they use, and after the databases
      # exist: nixpkgs' postgresql module creates `ensureDatabases` in a unit
      # of its own, postgresql-setup.service (oneshot, RemainAfterExit,
      # after postgresql.service; nixos/modules/services/databases/postgresql.nix,
      # `systemd.services.postgresql-setup`, read in a 2025+ copy: the pinned
      # revision is from 2026), not in postgresql.service's postStart as
      # before, so ordering after the server alone let services connect to
      # a database not made yet.
      after = [ "network.target" "systemd-tmpfiles-setup.service" ] ++ builtins.attrValues (wslib.storeUnits manifest) ++ setupUnits;
      wants = builtins.attrValues (wslib.storeUnits manifest) ++ setupUnits;
      path = [ pkgs.coreutils ];
      environment.PATH = lib.mkForce "${wslib.programPath}:${lib.makeBinPath [ pkgs.coreutils ]}";
      preStart = ''
        hash=$(cat ${rendered}/.hash)
        dir=${wslib.root}/supervisor/$hash
        if [ ! -e ${wslib.root}/supervisor/current ]; then
          rm -rf "$dir.tmp" && cp -r ${rendered} "$dir.tmp" && chmod -R u+w "$dir.tmp" && touch "$dir.tmp/.complete"
          mv -T "$dir.tmp" "$dir"
          ln -sfn "$hash" ${wslib.root}/supervisor/current.new && mv -T ${wslib.root}/supervisor/current.new ${wslib.root}/supervisor/current
        fi
      '';
      serviceConfig = {
        ExecStart = "${pkgs.python3Packages.supervisor}/bin/supervisord -n -c ${wslib.root}/supervisor/current/supervisord.conf";
        ExecReload = "${pkgs.python3Packages.supervisor}/bin/supervisorctl -c ${wslib.root}/supervisor/current/supervisord.conf update";
        Restart = "always";
        KillMode = "mixed";
        TimeoutStopSec = 60;
      };
    };

    # First boot: the host key as the tag workstation:host-key, which
    # `workstation create` waits for and pins. The instance role may tag
    # only its own instance (terraform/iam.tf).
    systemd.services.workstation-publish-host-key = {
      description = "Publish this box's SSH host key as an EC2 tag";
      wantedBy = [ "multi-user.target" ];
      after = [ "sshd.service" "network-online.target" ];
      wants = [ "network-online.target" ];
      # The mark is on the root volume: a new root (`workstation upgrade`)
      # has a new host key and publishes it.
      unitConfig.ConditionPathExists = "!${wslib.rootState}/host-key-published";
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        Restart = "on-failure";
        RestartSec = 5;
      };
      script = ''
        ${ws} box publish-host-key --host-key-file /etc/ssh/ssh_host_ed25519_key.pub
        mkdir -p ${wslib.rootState}
        touch ${wslib.rootState}/host-key-published
      '';
    };

    # The owner's account: name from the instance tag workstation:owner
    # (instance metadata tags are enabled by `workstation create`), key from
    # the key pair the instance was launched with.
    systemd.services.workstation-owner = {
      description = "Create the box owner's account from instance metadata";
      wantedBy = [ "multi-user.target" ];
      before = [ "sshd.service" ];
      # Home is on the data volume (workstation-data is ordered before).
      after = [ "network-online.target" ];
      wants = [ "network-online.target" ];
      path = [ pkgs.curl pkgs.shadow pkgs.coreutils ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        Restart = "on-failure";
        RestartSec = 2;
      };
      script = imds + ''
        owner=$(md tags/instance/workstation:owner)
        case "$owner" in
          # The owner rule of provisioner/src/manifest/name.rs: a-z, 0-9
          # and '-', a letter first, not '-' last, at most 32 characters.
          ""|*[!a-z0-9-]*|[!a-z]*|*-) echo "workstation:owner tag $owner is not a valid user name" >&2; exit 1 ;;
        esac
        if [ ''${#owner} -gt 32 ]; then echo "workstation:owner tag $owner is longer than 32 characters" >&2; exit 1; fi
        id "$owner" >/dev/null 2>&1 || useradd --create-home --groups wheel "$owner"
        # A new root (`workstation upgrade`) makes the account again, maybe
        # with another uid (the SSM agent's ssm-user may come first): the
        # home on the data volume becomes the account's.
        [ "$(stat -c %U /home/"$owner")" = "$owner" ] || chown -R "$owner":users /home/"$owner"
        install -d -m 0700 -o "$owner" -g users /home/"$owner"/.ssh
        md public-keys/0/openssh-key > /home/"$owner"/.ssh/authorized_keys.new
        chown "$owner":users /home/"$owner"/.ssh/authorized_keys.new
        chmod 0600 /home/"$owner"/.ssh/authorized_keys.new
        mv /home/"$owner"/.ssh/authorized_keys.new /home/"$owner"/.ssh/authorized_keys
      '';
    };
    users.mutableUsers = true;
    # workstation runs the box's setup through `sudo -n` (stack/shell.rs).
    security.sudo.wheelNeedsPassword = false;

    # Every minute: measure activity, warn, stop this instance when idle.
    systemd.services.workstation-idle-check = {
      description = "Stop this box when idle (workstation box idle-check)";
      after = [ "network-online.target" ];
      path = [ pkgs.iproute2 pkgs.nftables pkgs.procps pkgs.util-linux ];
      environment.WORKSTATION_MANIFEST = "/etc/workstation/workstation.toml";
      serviceConfig = {
        Type = "oneshot";
        ExecStart = "${ws} box idle-check";
      };
    };
    systemd.timers.workstation-idle-check = {
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnCalendar = wslib.idleCheckCalendar;
        AccuracySec = "5s";
        Persistent = false;
      };
    };

    # Session Manager's agent, for `connect = "ssm"` (SSH with no inbound
    # port; terraform/network.tf has its endpoints, iam.tf its channels).
    # nixos/modules/services/misc/amazon-ssm-agent.nix declares `enable` and
    # `package` (pkgs.amazon-ssm-agent, pkgs/by-name/am/amazon-ssm-agent)
    # and runs amazon-ssm-agent.service; nixos/modules/virtualisation/
    # amazon-image.nix already sets it true as a plain definition, and an
    # equal plain definition merges. Sessions use AWS-StartSSHSession only
    # (the engineers' policy), so they reach sshd, never the agent's own
    # shell (its ssm-user may sudo).
    services.amazon-ssm-agent.enable = true;

    services.openssh = {
      enable = true;
      settings = {
        PasswordAuthentication = false;
        KbdInteractiveAuthentication = false;
        # amazon-image.nix sets "prohibit-password" as a plain definition,
        # and the option is an enum (services/networking/ssh/sshd.nix):
        # two plain values would not evaluate.
        PermitRootLogin = lib.mkForce "no";
        # `workstation intercept` binds the service's ports on all the
        # box's addresses (ssh -R 0.0.0.0:PORT), so the security group's
        # CIDRs (a colleague's `share`) reach the laptop's process too.
        # (services/networking/ssh/sshd.nix: settings.GatewayPorts, a
        # nullOr str defaulting to "no".)
        GatewayPorts = "clientspecified";
      };
      # Team boxes (`workstation env`, docs/team.md): engineers of the
      # box's team push their own key for 60 s with EC2 Instance Connect
      # (terraform/iam.tf allows it only for their team's boxes); this
      # command answers sshd with those keys from the instance metadata,
      # plain keys only, and records each login in the access log that
      # `env status` shows. It runs as root because `box route` (run with
      # sudo) appends to the same log. sshd.nix (read in the 2026 unstable
      # copy Swarsel/nixpkgs@4aa6836, nixos/modules/services/networking/
      # ssh/sshd.nix) declares `authorizedKeysCommand` (str, default
      # "none") and `authorizedKeysCommandUser` (str, default "nobody"),
      # and writes both lines only when the command is not "none"; its
      # build-time `sshd -G -T` check needs only an absolute path.
      authorizedKeysCommand = "${ws} box authorized-keys --log ${wslib.root}/access.jsonl %u %f";
      authorizedKeysCommandUser = "root";
    };
    # The services' ports are reachable only through the security group
    # (terraform), which allows the configured CIDRs.
    networking.firewall.allowedTCPPorts = [ 22 ] ++ wslib.servicePorts manifest;
  };
}
