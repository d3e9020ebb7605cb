# What the box image derives from workstation.toml, as pure functions of
# the manifest: no nixpkgs, so CI's Nix 2.8 evaluates them too
# (tests/tests/nix.rs compares them with the Rust side).
rec {
  # The box's workstation directory: provisioner/src/stack/layout.rs DEFAULT_ROOT.
  root = "/var/lib/workstation";

  # PATH for every supervised program. The image writes it to
  # /etc/workstation/program-path, where `workstation up` reads it back
  # (stack/shell.rs), so the configuration rendered at build time and the one the
  # laptop renders are the same bytes and `up` restarts nothing.
  programPath = "/run/wrappers/bin:/run/current-system/sw/bin";

  # Who runs the data stores: systemd, through nixpkgs' modules. The image
  # writes it to /etc/workstation/stores, where `workstation up` reads it,
  # so supervisord's configuration leaves the stores out on both sides.
  storeRunner = "systemd";

  readManifest = path: builtins.fromTOML (builtins.readFile path);

  # `workstation <renderArgs> --out $out` at build time.
  renderArgs = [ "render" "supervisord" "--root" root "--path" programPath "--stores" storeRunner ];

  attrValues = set: map (name: set.${name}) (builtins.attrNames set);

  stores = manifest: attrValues (manifest.stores or { });
  services = manifest: attrValues (manifest.services or { });

  # Store kinds in use: their server packages go into the image.
  storeKinds = manifest:
    builtins.sort builtins.lessThan
      (builtins.attrNames (builtins.listToAttrs (map (s: { name = s.kind; value = true; }) (stores manifest))));

  # manifest/store.rs StoreKind::default_port.
  defaultPorts = { redis = 6379; postgres = 5432; mongodb = 27017; opensearch = 9200; mysql = 3306; sqs = 9324; };
  storePort = store: store.port or defaultPorts.${store.kind};

  # The stores of one kind, by name.
  storesOfKind = kind: manifest:
    builtins.listToAttrs (builtins.concatMap
      (name: let s = manifest.stores.${name}; in if s.kind == kind then [ { inherit name; value = s; } ] else [ ])
      (builtins.attrNames (manifest.stores or { })));

  # The stores a server on the box runs: all but sqs ones, whose queues
  # are Amazon SQS's (stack/stores.rs `runner`).
  hostedStores = manifest: builtins.removeAttrs (manifest.stores or { })
    (builtins.filter (name: manifest.stores.${name}.kind == "sqs") (builtins.attrNames (manifest.stores or { })));

  # The systemd unit each store runs as (stack/stores.rs `system_unit`): nixpkgs
  # names redis servers after their attribute; the others are one per box.
  storeUnits = manifest: builtins.mapAttrs
    (name: s: if s.kind == "redis" then "redis-${name}.service"
      else if s.kind == "postgres" then "postgresql.service"
      else "${s.kind}.service")
    (hostedStores manifest);

  # The data volume (provisioner/src/provider/data.rs DEVICE), mounted at
  # `root`: everything below root is on it, and these directories of the
  # root volume are bind mounts of directories on it, so a new root
  # (`workstation upgrade`) finds home and the stores' data as they were.
  # Each store's directory and user are its nixpkgs module's (see the
  # citations in workstation.nix); opensearch's data directory is set to
  # its `source` instead (target null), as its module otherwise runs it
  # with DynamicUser, whose state directory cannot be a bind mount.
  # Users and groups share names.
  dataDevice = "/dev/sdf";
  dataBinds = manifest: [ { target = "/home"; source = "${root}/home"; user = "root"; } ]
    ++ attrValues (builtins.mapAttrs
      (name: s:
        if s.kind == "redis" then { target = "/var/lib/redis-${name}"; source = "${root}/stores/redis-${name}"; user = "redis-${name}"; }
        else if s.kind == "postgres" then { target = "/var/lib/postgresql"; source = "${root}/stores/postgresql"; user = "postgres"; }
        else if s.kind == "mongodb" then { target = "/var/db/mongodb"; source = "${root}/stores/mongodb"; user = "mongodb"; }
        else if s.kind == "mysql" then { target = "/var/lib/mysql"; source = "${root}/stores/mysql"; user = "mysql"; }
        else { target = null; source = "${root}/stores/opensearch"; user = "opensearch"; })
      (hostedStores manifest));

  # Marks that belong to a root, not to the data: a new root publishes its
  # own host key.
  rootState = "/var/lib/workstation-root";

  # The database a postgres, mysql or mongodb store holds (manifest/store.rs
  # `Store::database`).
  database = name: store: store.database or (builtins.replaceStrings [ "-" ] [ "_" ] name);

  # The services' ports and their fronts' (manifest/file.rs
  # `service_ports`), which the firewall opens and the idle check counts
  # connections to.
  servicePorts = manifest:
    builtins.sort builtins.lessThan (builtins.concatLists
      (map (s: (s.ports or [ ]) ++ (if s ? front then [ s.front.port ] else [ ])) (services manifest)));

  # Whether any service has a front: the image then carries nginx, which
  # supervisord's `ws-front` runs (stack/front.rs).
  fronted = manifest: builtins.any (s: s ? front) (services manifest);

  # The disk the image is built with: the manifest's, so a box's root
  # volume (RunInstances asks for disk_gib) is never smaller than its
  # snapshot. The raw file is sparse and publish skips zero blocks.
  diskSizeMB = manifest: manifest.box.disk_gib * 1024;

  # box.hibernate: the guest side of EC2 hibernation (images/hibernation.nix,
  # provisioner/src/boxside/hibernation.rs, docs/images.md "Hibernation").
  hibernates = manifest: manifest.box.hibernate or false;
  hibernation = {
    # On the root, which EC2 requires encrypted for hibernation, as AWS's
    # hibinit agent puts its /swap.
    swapFile = "/swapfile";
    # The root of nixpkgs' amazon-image.nix: fileSystems."/".device.
    resumeDevice = "/dev/disk/by-label/nixos";
    # GRUB's environment block: install-grub.pl's header loads
    # $prefix/grubenv (load_env) before the menu entries.
    grubEnv = "/boot/grub/grubenv";
    # What the last boot found, for `workstation doctor`
    # (provisioner/src/boxes/doctor.rs HIBERNATION_STATUS).
    status = "${rootState}/hibernation";
    # GRUB expands the variable in the kernel command line from that block
    # ("resume_offset=N", set at each boot); unset, to nothing: an empty
    # `resume_offset=` would stop systemd's resume generator. One word, as
    # boot.kernelParams' type demands (system/boot/kernel.nix).
    kernelParams = [ "\${ws_resume_args}" ];
  };

  # The idle check runs every minute (docs/idle.md).
  idleCheckCalendar = "*-*-* *:*:00";
}
