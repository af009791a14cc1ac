"""Nova's fake virt driver, keeping each server's config drive as files.

`compute_driver = rocta_virt.ConfigDriveFakeDriver`. On spawn, the server's config drive
content (Nova's own `InstanceMetadata.metadata_for_config_drive`: `openstack/latest/
meta_data.json`, `user_data`, the injected files under `openstack/content/`) is written to
`<instances_path>/<uuid>/config-drive/`, as the config drive image Nova would attach would hold
it; destroy removes it. Nothing boots: rocta's tests play the hypervisor from these files.
"""
import os
import shutil

from nova.api.metadata import base as instance_metadata
import nova.conf
from nova.virt import fake

CONF = nova.conf.CONF


def _dir(instance):
    return os.path.join(CONF.instances_path, instance.uuid, "config-drive")


class ConfigDriveFakeDriver(fake.FakeDriver):
    def spawn(self, context, instance, image_meta, injected_files, admin_password,
              allocations, network_info=None, block_device_info=None, power_on=True,
              accel_info=None):
        super().spawn(context, instance, image_meta, injected_files, admin_password,
                      allocations, network_info=network_info,
                      block_device_info=block_device_info, power_on=power_on,
                      accel_info=accel_info)
        md = instance_metadata.InstanceMetadata(
            instance, content=injected_files, extra_md={"admin_pass": admin_password},
            network_info=network_info)
        root = _dir(instance)
        tmp = root + ".new"
        shutil.rmtree(tmp, ignore_errors=True)
        for path, value in md.metadata_for_config_drive():
            full = os.path.join(tmp, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(value if isinstance(value, bytes) else value.encode())
        shutil.rmtree(root, ignore_errors=True)
        os.rename(tmp, root)

    def destroy(self, context, instance, network_info, block_device_info=None,
                destroy_disks=True, destroy_secrets=True):
        super().destroy(context, instance, network_info, block_device_info=block_device_info,
                        destroy_disks=destroy_disks, destroy_secrets=destroy_secrets)
        shutil.rmtree(os.path.dirname(_dir(instance)), ignore_errors=True)
