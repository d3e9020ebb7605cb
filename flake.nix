{
  description = "workstation: Nix-reproducible remote development boxes";

  # One pinned input (flake.lock). `nix flake update` moves the pin; the
  # lock's hash is tagged on every published AMI.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs = { self, nixpkgs }:
    let
      systems = [ "x86_64-linux" "aarch64-linux" ];
      forAll = f: nixpkgs.lib.genAttrs systems (system: f system nixpkgs.legacyPackages.${system});
      wslib = import ./images/lib.nix;

      # Both binaries from one workspace build; the tests crate needs root,
      # network namespaces and moto, so the Nix build skips `cargo test`.
      crate = pkgs: pname: extra: pkgs.rustPlatform.buildRustPackage ({
        inherit pname;
        version = "0.1.0";
        src = nixpkgs.lib.cleanSourceWith {
          src = ./.;
          filter = path: type:
            let base = baseNameOf path; in
            !(builtins.elem base [ "target" "result" "result-ami" ".git" ]);
        };
        cargoLock.lockFile = ./Cargo.lock;
        cargoBuildFlags = [ "--package" pname ];
        # `workstation --version` names the commit (provisioner/src/main.rs).
        WORKSTATION_COMMIT = self.rev or self.dirtyRev or "unknown";
        doCheck = false;
        meta.mainProgram = pname;
      } // extra);

      # The reaper Lambda's binary: its own workspace crate
      # (provisioner/reaper-lambda, lambda_runtime). Lambda's provided.al2023
      # runtime has no /nix/store, so it is linked statically (musl), and it
      # is built for arm64, terraform/reaper.tf's architecture, on any
      # build system. (nixpkgs: lib/systems/examples.nix
      # aarch64-multiplatform-musl; pkgs/top-level/stage.nix pkgsStatic.)
      reaperBinary = pkgs: crate pkgs.pkgsCross.aarch64-multiplatform-musl.pkgsStatic "workstation-reaper" { };

      # The AMI disk, with what it bakes in beside nixpkgs' image-info.json:
      # `image publish` names the AMI after this result's store path (which
      # changes with anything the image is built from) and tags it with the
      # manifest's hash (sha256 of its bytes, as the CLI hashes it) and the
      # nixpkgs revision, so the tags say what the image holds.
      ami = system: manifest:
        let
          pkgs = nixpkgs.legacyPackages.${system};
          image = (box system manifest).config.system.build.amazonImage;
          baked = pkgs.writeText "workstation-image.json" (builtins.toJSON {
            manifest_hash = builtins.hashFile "sha256" manifest;
            nixpkgs = nixpkgs.rev or "unknown";
          });
        in
        pkgs.runCommand "workstation-ami-${system}" { } ''
          mkdir -p $out/nix-support
          cp ${image}/nix-support/image-info.json ${baked} $out/nix-support/
          ln -s ${image} $out/image
        '';

      # The box for one system, from the manifest `manifest`.
      box = system: manifest: nixpkgs.lib.nixosSystem {
        modules = [
          self.nixosModules.workstation
          ./images/box.nix
          {
            nixpkgs.hostPlatform = system;
            workstation.manifest = manifest;
            workstation.package = self.packages.${system}.workstation;
          }
        ];
      };
    in
    {
      packages = forAll (system: pkgs: {
        workstation = crate pkgs "workstation" { };
        hosts-agent = crate pkgs "workstation-hosts" { };
        default = self.packages.${system}.workstation;
        # terraform's reaper_zip: the Lambda custom runtime wants `bootstrap`,
        # a static arm64 executable (checked here, so a dynamic one never ships).
        reaper-lambda-arm64 = pkgs.runCommand "workstation-reaper-lambda-arm64.zip" { nativeBuildInputs = [ pkgs.zip pkgs.file ]; } ''
          cp ${reaperBinary pkgs}/bin/workstation-reaper bootstrap
          file -L bootstrap | grep -Eq "ARM aarch64.*(statically|static-pie) linked" || { file -L bootstrap; echo "bootstrap must be a static arm64 executable" >&2; exit 1; }
          zip -X $out bootstrap
        '';
        # nix-support/image-info.json (the raw disk's path) and
        # workstation-image.json: `workstation image build` builds this,
        # `image publish` uploads it.
        ami = ami system ./examples/workstation.toml;
      });

      nixosModules.workstation = ./images/workstation.nix;

      # A company's flake sets its own manifest:
      #   nixosConfigurations.box = workstation.lib.box "x86_64-linux" ./workstation.toml;
      #   packages.x86_64-linux.ami = workstation.lib.ami "x86_64-linux" ./workstation.toml;
      lib.box = box;
      lib.ami = ami;
      nixosConfigurations.workstation = box "x86_64-linux" ./examples/workstation.toml;

      devShells = forAll (system: pkgs: {
        default = pkgs.mkShell {
          packages = [
            pkgs.cargo pkgs.rustc pkgs.clippy pkgs.rustfmt
            (pkgs.python3.withPackages (ps: [ ps.moto ] ++ ps.moto.optional-dependencies.server))
            pkgs.redis pkgs.postgresql_16 pkgs.python3Packages.supervisor pkgs.openssh pkgs.rsync
          ];
        };
      });

      checks = forAll (system: pkgs: {
        workstation = self.packages.${system}.workstation;
        hosts-agent = self.packages.${system}.hosts-agent;
        # The configuration the image bakes in is what `workstation render`
        # writes for the same manifest, root and PATH (tests/tests/nix.rs
        # checks the inputs with Nix 2.8).
        render = pkgs.runCommand "workstation-render-check" { } ''
          ${self.packages.${system}.workstation}/bin/workstation --manifest ${./examples/workstation.toml} \
            ${nixpkgs.lib.escapeShellArgs wslib.renderArgs} --out rendered
          diff -r --exclude=.hash ${(box system ./examples/workstation.toml).config.system.build.workstationSupervisord} rendered
          touch $out
        '';
        box = (box system ./examples/workstation.toml).config.system.build.toplevel;
        # box.hibernate's options evaluate to what images/lib.nix says
        # (tests/tests/nix.rs evaluates lib.nix itself with Nix 2.8): the
        # systemd initrd's resume=, GRUB's offset variable, logind's sleep
        # button, and the service that prepares the swap file.
        hibernation =
          let
            manifest = builtins.toFile "hibernating.toml"
              (builtins.replaceStrings [ "[box]\n" ] [ "[box]\nhibernate = true\n" ] (builtins.readFile ./examples/workstation.toml));
            c = (box system manifest).config;
            h = wslib.hibernation;
            ok = c.boot.resumeDevice == h.resumeDevice
              && builtins.elem "resume=${h.resumeDevice}" c.boot.kernelParams
              && builtins.all (p: builtins.elem p c.boot.kernelParams) h.kernelParams
              && c.services.logind.settings.Login.HandleSuspendKey == "hibernate"
              && builtins.elem "multi-user.target" c.systemd.services.workstation-hibernation.wantedBy
              && !(builtins.elem (builtins.head h.kernelParams) (box system ./examples/workstation.toml).config.boot.kernelParams);
          in
          assert ok; pkgs.writeText "workstation-hibernation-check" "box.hibernate's options evaluate as images/lib.nix says";
      });
    };
}
