# box.hibernate: the guest side of EC2 hibernation, what AWS's hibinit
# agent does on Amazon Linux (docs/images.md, "Hibernation"). Only for a
# manifest with box.hibernate = true.
#
# EC2 hibernates a guest by pressing the ACPI sleep button, then expects it
# to write its RAM to swap on the (encrypted) root and power off; the next
# boot resumes if the kernel command line names where: resume= the root
# device, resume_offset= the swap file's first block.
#
# Each option, as read in nixpkgs' source (a 2026 copy after the 26.05
# release, Swarsel/nixpkgs@4aa6836; the pinned 9fbb54b is not readable
# through the search tool):
# - boot.resumeDevice (system/boot/stage-1.nix, str): the systemd initrd,
#   the default since 26.05 (system/boot/systemd/initrd.nix), adds
#   "resume=<device>" to the kernel parameters and runs
#   systemd-hibernate-resume;
# - boot.kernelParams (system/boot/kernel.nix, each matching
#   ([^"[:space:]]|"[^"]*")+): written unescaped into GRUB's `linux` line
#   by loader/grub/install-grub.pl, whose header runs load_env on
#   $prefix/grubenv, so GRUB expands ${ws_resume_args} from that block;
# - services.logind.settings.Login.HandleSuspendKey
#   (system/boot/systemd/logind.nix; freeform, and suspendKey is renamed
#   to it): the sleep button is KEY_SLEEP, which logind handles as the
#   suspend key (AWS's agent inhibits exactly handle-suspend-key);
# - swapDevices (config/swap.nix) is not used: its service makes the file
#   with dd at boot before the root can be known grown, and ours makes it
#   with fallocate as the agent does, then swaps on itself.
{ config, lib, pkgs, ... }:

let
  cfg = config.workstation;
  wslib = import ./lib.nix;
  manifest = wslib.readManifest cfg.manifest;
  h = wslib.hibernation;
in
{
  config = lib.mkIf (wslib.hibernates manifest) {
    boot.resumeDevice = h.resumeDevice;
    boot.kernelParams = h.kernelParams;
    services.logind.settings.Login.HandleSuspendKey = "hibernate";

    # Every boot: the swap file the size of RAM, its offset to /sys/power
    # (this boot can hibernate) and to GRUB's environment block (the next
    # boot resumes); the outcome in the journal and in h.status, which
    # `workstation doctor` reads (provisioner/src/boxside/hibernation.rs).
    # After local-fs: amazon-image.nix grows the root in the initrd
    # (autoResize, boot.growPartition), before this runs.
    systemd.services.workstation-hibernation = {
      description = "Prepare this box to hibernate (workstation box hibernation)";
      wantedBy = [ "multi-user.target" ];
      after = [ "local-fs.target" ];
      # mkswap and swapon (util-linux); grub-editenv (grub2, the package
      # loader/grub/grub.nix installs).
      path = [ pkgs.util-linux pkgs.grub2 ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
        ExecStart = "${cfg.package}/bin/workstation box hibernation --swap-file ${h.swapFile} --resume-device ${h.resumeDevice} --grub-env ${h.grubEnv} --status ${h.status}";
      };
    };
  };
}
