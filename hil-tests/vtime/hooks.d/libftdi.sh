# Sourced by hil-tests/vtime/run.sh (see its README): the libftdi1 contender
# of the timing tier, a static C program built beside the guest program and
# installed as /bin/libftdi_loop.
case "$VTIME_PHASE" in
    build)
        apt_install libftdi1-dev
        bash "$ROOT/hil-tests/vtime/contenders/build.sh" "$(guest_target_dir)" \
            "$WORK/contenders/libftdi_loop"
        ;;
    initramfs)
        add_binary "$RD" "$WORK/contenders/libftdi_loop"
        ;;
esac
