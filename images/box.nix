# The box: NixOS on EC2 with nixosModules.workstation, built into a raw
# disk by nixpkgs' own amazon image support (`packages.<system>.ami`).
{ config, lib, modulesPath, ... }:

let
  wslib = import ./lib.nix;
  manifest = wslib.readManifest config.workstation.manifest;
in
{
  imports = [
    "${modulesPath}/../maintainers/scripts/ec2/amazon-image.nix"
    ./workstation.nix
  ];

  # Raw, so `workstation image publish` uploads it block by block (EBS
  # direct APIs) without a conversion step; the file is sparse.
  # (maintainers/scripts/ec2/amazon-image.nix: format is an enum of raw,
  # qcow2 and vpc; amazonImage.sizeMB and .name were renamed to
  # virtualisation.diskSize, in MiB, and image.baseName.)
  amazonImage.format = "raw";
  virtualisation.diskSize = wslib.diskSizeMB manifest;
  image.baseName = "workstation-box";
  # Graviton has no BIOS; image publish registers aarch64 as uefi.
  ec2.efi = config.nixpkgs.hostPlatform.isAarch64;

  time.timeZone = "UTC";
  documentation.enable = false;
  nix.settings.experimental-features = [ "nix-command" "flakes" ];
  system.stateVersion = "26.05";
}
